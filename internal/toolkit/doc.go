// Package toolkit is cclm's migration toolkit controller (upstream:
// Forklift's forklift-controller, the Migration Toolkit for
// Virtualization), the subset that live-migrates VMs from another
// OpenShift/KubeVirt cluster into this one. `cclm toolkit` runs it in the
// target cluster as ServiceAccount forklift-controller in openshift-mtv
// (Component holds its rights), enabled by the ForkliftController's
// spec.feature_ocp_live_migration: "true".
//
// Its design, and what it promises the other components, are in
// docs/design.md ("The migration toolkit").
package toolkit
