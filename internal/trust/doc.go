// Package trust is the migration trust between clusters, as KubeVirt keeps
// it: a cluster's migration CA in ConfigMap kubevirt-ca, its peers' CAs in
// ConfigMap kubevirt-external-ca (key ca-bundle, KubeVirt's namespace). It
// merges bundles by certificate, not text, and imports a peer's bundle
// without touching the CAs already there. It imports nothing of cclm's: the
// installer, cclm connect, the toolkit and the node agents share it.
package trust
