// Package trust is the migration trust between clusters, as KubeVirt keeps
// it: each cluster's migration CA in ConfigMap kubevirt-ca, and the CAs of
// the clusters it migrates with in ConfigMap kubevirt-external-ca, both
// under key ca-bundle in KubeVirt's namespace. It merges CA bundles by
// certificate, not by text, and imports a peer's bundle into a cluster
// without touching the CAs already there. It imports nothing of cclm's:
// the installer, cclm connect, the toolkit and the node agents share it.
package trust
