// Package preflight checks, before anything is created, that a
// cross-cluster live migration can work: the checks of `cclm preflight`
// and of a live Plan's conditions. Run reads both clusters and creates
// nothing.
package preflight

import (
	"context"
	"net"
	"time"

	"k8s.io/client-go/rest"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// Side names a cluster of the migration.
type Side string

const (
	Source Side = "source"
	Target Side = "target"
)

// Input is what the checks look at.
type Input struct {
	// Source reaches the source cluster as the toolkit will: with the
	// Provider's service-account token, so that its permissions are what
	// is checked.
	Source *rest.Config
	// Target reaches the target cluster.
	Target *rest.Config
	// VirtNamespace holds the KubeVirt CR on both clusters (default
	// openshift-cnv); ToolkitNamespace holds the ForkliftController on the
	// target (default openshift-mtv).
	VirtNamespace, ToolkitNamespace string
	// VMs to migrate (namespace and name, or ID); none checks the clusters
	// only.
	VMs []forkliftv1beta1.Ref
	// TargetNamespace is where the VMs go on the target; empty: each VM's
	// own namespace.
	TargetNamespace string
	// NetworkMap and StorageMap are the plan's maps.
	NetworkMap []forkliftv1beta1.NetworkPair
	StorageMap []forkliftv1beta1.StoragePair
	// DialSync connects to a sync controller's address from where the
	// other cluster's sync controller sits; cluster names that dialing
	// cluster (SourceName or TargetName). The lab dials from its sync
	// controllers' network namespaces; nil dials from here.
	DialSync func(ctx context.Context, cluster, address string) (net.Conn, error)
	// Timeout bounds each check that talks to a server; default 5 s.
	Timeout time.Duration

	// SourceName and TargetName name the clusters in messages and fixes
	// (kubeconfig context names such as ocp7 and ocp1); default "source"
	// and "target", and fixes then leave out kubectl's --context.
	SourceName, TargetName string
	// SourceNodes, if set, reaches the source with rights to read Nodes,
	// which the guide's ClusterRole does not give the token: it is used for
	// nothing else than reading the node a host-model VM runs on (its
	// host-model-cpu.node.kubevirt.io label), so that CPUModel can check a
	// host-model CPU too. Nil: the token is tried, and a host-model CPU
	// whose node it may not read is Skipped.
	SourceNodes *rest.Config
	// SameCluster: source and target are one cluster (Forklift's host
	// Provider on both ends), and the VMs move between its namespaces.
	// The checks between two clusters then hold by themselves (one
	// migration network, one CA), the trust needs no write, the VM's own
	// MACs are no conflict, and the target namespace must differ from
	// each VM's.
	SameCluster bool
}

// Status is a check's outcome.
type Status string

const (
	Passed  Status = "Passed"
	Failed  Status = "Failed"
	Skipped Status = "Skipped" // not run: what it needs failed first
)

// Check is one finding. Failed checks name their fix.
type Check struct {
	// ID is stable and CamelCase (e.g. FeatureGate, TokenPermissions,
	// VMRunning, CPUModel, SyncReachable): Plan conditions use it as their
	// type.
	ID string `json:"id"`
	// Side is the cluster checked, when one is.
	Side Side `json:"side,omitempty"`
	// VM is namespace/name when the check is about one VM.
	VM      string `json:"vm,omitempty"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is every check's outcome, in a stable order.
type Report struct {
	Checks []Check `json:"checks"`
}

// OK reports whether no check failed.
func (r Report) OK() bool { return len(r.Failures()) == 0 }

// Failures are the failed checks.
func (r Report) Failures() []Check {
	var failed []Check
	for _, c := range r.Checks {
		if c.Status == Failed {
			failed = append(failed, c)
		}
	}
	return failed
}
