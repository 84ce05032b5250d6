// Package toolkit is cclm's migration toolkit controller (`cclm toolkit`;
// upstream: Forklift's forklift-controller), the subset that live-migrates
// VMs from another OpenShift/KubeVirt cluster into this one. It runs in the
// target cluster as ServiceAccount forklift-controller in openshift-mtv
// (Component holds its rights) while the ForkliftController sets
// spec.feature_ocp_live_migration; its design is in docs/design.md.
package toolkit
