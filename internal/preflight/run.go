package preflight

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cclm-io/cclm/internal/scheme"
)

// Defaults of Input.
const (
	DefaultVirtNamespace    = "openshift-cnv"
	DefaultToolkitNamespace = "openshift-mtv"
	DefaultTimeout          = 5 * time.Second
)

// Check IDs, stable: Plan conditions use them as their types.
const (
	TokenValid              = "TokenValid"
	TokenPermissions        = "TokenPermissions"
	ToolkitEnabled          = "ToolkitEnabled"
	FeatureGate             = "FeatureGate"
	Versions                = "Versions"
	SyncAddress             = "SyncAddress"
	SyncReachable           = "SyncReachable"
	MigrationRangesDisjoint = "MigrationRangesDisjoint"
	ClusterTrust            = "ClusterTrust"
	VMExists                = "VMExists"
	VMFieldsSupported       = "VMFieldsSupported"
	VMRunning               = "VMRunning"
	VMStorageLiveMigratable = "VMStorageLiveMigratable"
	NetworkMapped           = "NetworkMapped"
	StorageMapped           = "StorageMapped"
	CPUModel                = "CPUModel"
	MACConflict             = "MACConflict"
	VMReferences            = "VMReferences"
	TargetStorage           = "TargetStorage"
)

// Run checks that the VMs of in can be live-migrated from in.Source to
// in.Target. It only reads (and asks SelfSubjectAccessReviews and a
// SelfSubjectReview, which store nothing): it creates nothing on either
// cluster. Every check of the table below appears in the report, in that
// order (per side, then per VM), Skipped when a check it depends on
// failed.
//
// What it reads. On the source, with in.Source (the Provider's token):
// the KubeVirt CR and the migration NAD in VirtNamespace, the VMs, their
// VMIs, PVCs and DataVolumes, the API server's version, and the VM's
// Node for a host-model CPU (with SourceNodes if set). On the target:
// the ForkliftController in ToolkitNamespace, the KubeVirt CR and
// migration NAD, Nodes, StorageClasses, and cluster-wide VMs, VMIs, PVCs
// and PVs (MACs in use, local storage in use), NADs named by the
// NetworkMap, and the version.
func Run(ctx context.Context, in Input) Report {
	in = withDefaults(in)
	source, err := newCluster(Source, in.SourceName, in.Source, in.Timeout)
	if err != nil {
		return configFailure(Source, in.SourceName, err)
	}
	target, err := newCluster(Target, in.TargetName, in.Target, in.Timeout)
	if err != nil {
		return configFailure(Target, in.TargetName, err)
	}
	if in.SourceNodes != nil {
		nodes, err := newCluster(Source, in.SourceName, in.SourceNodes, in.Timeout)
		if err != nil {
			return configFailure(Source, in.SourceName, err)
		}
		source.nodeReader = nodes.client
	}
	return run(ctx, in, source, target)
}

func withDefaults(in Input) Input {
	if in.VirtNamespace == "" {
		in.VirtNamespace = DefaultVirtNamespace
	}
	if in.ToolkitNamespace == "" {
		in.ToolkitNamespace = DefaultToolkitNamespace
	}
	if in.Timeout <= 0 {
		in.Timeout = DefaultTimeout
	}
	if in.SourceName == "" {
		in.SourceName = string(Source)
	}
	if in.TargetName == "" {
		in.TargetName = string(Target)
	}
	if in.DialSync == nil {
		in.DialSync = func(ctx context.Context, _, address string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "tcp", address)
		}
	}
	return in
}

// newCluster makes the clients of one side from its config: a
// controller-runtime client for reads (and reviews) and a discovery
// client for the version.
func newCluster(side Side, name string, config *rest.Config, timeout time.Duration) (*cluster, error) {
	if config == nil {
		return nil, fmt.Errorf("no configuration to reach the %s cluster", side)
	}
	config = rest.CopyConfig(config)
	// Preflight makes a few dozen requests at once (the access reviews);
	// the default 5 QPS would make it slow for nothing.
	config.QPS, config.Burst = 50, 100
	if config.Timeout == 0 || config.Timeout > timeout {
		config.Timeout = timeout
	}
	c, err := client.New(config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	return &cluster{
		side: side, name: name, host: config.Host, client: c, nodeReader: c,
		version: func(context.Context) (*version.Info, error) { return disco.ServerVersion() },
	}, nil
}

// configFailure is the report when a side's configuration cannot even make
// a client.
func configFailure(side Side, name string, err error) Report {
	id := TokenValid
	fix := "check the Provider's url, token and ca.crt (`cclm connect` writes them)"
	if side == Target {
		id = ToolkitEnabled
		fix = "check the kubeconfig of the target cluster"
	}
	return Report{Checks: []Check{{
		ID: id, Side: side, Status: Failed,
		Message: fmt.Sprintf("cannot make a client for the %s cluster %s: %v", side, name, err),
		Fix:     fix,
	}}}
}

// need is a check another depends on. sameSide: only a failure on the
// same side blocks (e.g. a source token failure does not block the
// target's FeatureGate).
type need struct {
	id       string
	sameSide bool
}

// check is an entry of the table: exactly one of cluster, perSide and
// perVM is set.
type check struct {
	id    string
	needs []need
	// side of a cluster-level check ("" for both).
	side    Side
	cluster func(ctx context.Context, r *runner) Check
	// perSide runs once per side, source then target.
	perSide func(ctx context.Context, r *runner, side Side) Check
	// perVM runs once per VM of the input; vmSide is the side it checks.
	perVM  func(ctx context.Context, r *runner, vm *vmFacts) Check
	vmSide Side
}

// checks is the table, in report order.
var checks = []check{
	{id: TokenValid, side: Source, cluster: checkTokenValid},
	{id: TokenPermissions, side: Source, needs: []need{{id: TokenValid}}, cluster: checkTokenPermissions},
	{id: ToolkitEnabled, side: Target, cluster: checkToolkitEnabled},
	{id: FeatureGate, needs: []need{{TokenValid, true}}, perSide: checkFeatureGate},
	{id: Versions, needs: []need{{id: TokenValid}}, cluster: checkVersions},
	{id: SyncAddress, needs: []need{{TokenValid, true}}, perSide: checkSyncAddress},
	{id: SyncReachable, needs: []need{{SyncAddress, true}}, perSide: checkSyncReachable},
	{id: MigrationRangesDisjoint, needs: []need{{id: TokenValid}}, cluster: checkRangesDisjoint},
	{id: ClusterTrust, needs: []need{{id: TokenValid}}, cluster: checkClusterTrust},
	{id: VMExists, vmSide: Source, needs: []need{{id: TokenValid}}, perVM: checkVMExists},
	{id: VMFieldsSupported, vmSide: Source, needs: []need{{id: VMExists}}, perVM: checkVMFieldsSupported},
	{id: VMRunning, vmSide: Source, needs: []need{{id: VMExists}}, perVM: checkVMRunning},
	{id: VMStorageLiveMigratable, vmSide: Source, needs: []need{{id: VMRunning}}, perVM: checkStorageLiveMigratable},
	{id: NetworkMapped, needs: []need{{id: VMExists}}, perVM: checkNetworkMapped},
	{id: StorageMapped, needs: []need{{id: VMExists}}, perVM: checkStorageMapped},
	{id: CPUModel, vmSide: Target, needs: []need{{id: VMExists}}, perVM: checkCPUModel},
	{id: MACConflict, vmSide: Target, needs: []need{{id: VMExists}}, perVM: checkMACConflict},
	{id: VMReferences, vmSide: Target, needs: []need{{id: VMExists}}, perVM: checkVMReferences},
	{id: TargetStorage, vmSide: Target, needs: []need{{id: VMExists}, {id: StorageMapped}}, perVM: checkTargetStorage},
}

// runner holds the input, both sides and what was read so far.
type runner struct {
	in             Input
	source, target *cluster
	vms            []*vmFacts
	report         Report
	// identity is who the token authenticates as, once TokenValid ran.
	identity string
}

func run(ctx context.Context, in Input, source, target *cluster) Report {
	r := &runner{in: in, source: source, target: target}
	for _, ref := range in.VMs {
		r.vms = append(r.vms, newVMFacts(ref))
	}
	for _, c := range checks {
		switch {
		case c.cluster != nil:
			r.do(ctx, c, c.side, "", func(ctx context.Context) Check { return c.cluster(ctx, r) })
		case c.perSide != nil:
			for _, side := range []Side{Source, Target} {
				r.do(ctx, c, side, "", func(ctx context.Context) Check { return c.perSide(ctx, r, side) })
			}
		default:
			for _, vm := range r.vms {
				r.do(ctx, c, c.vmSide, vm.key(), func(ctx context.Context) Check { return c.perVM(ctx, r, vm) })
			}
		}
	}
	return r.report
}

// do runs one instance of a check, or skips it, and records the outcome.
func (r *runner) do(ctx context.Context, c check, side Side, vm string, fn func(context.Context) Check) {
	result := Check{Status: Skipped}
	if blocker := r.blocker(c, side, vm); blocker != "" {
		result.Message = skippedPrefix + blocker + skippedSuffix
	} else {
		checkCtx, cancel := context.WithTimeout(ctx, r.in.Timeout)
		result = fn(checkCtx)
		cancel()
	}
	result.ID = c.id
	if result.Side == "" {
		result.Side = side
	}
	if result.VM == "" {
		result.VM = vm
	}
	r.report.Checks = append(r.report.Checks, result)
}

// A skipped check's message: skippedPrefix, what failed, skippedSuffix.
const (
	skippedPrefix = "not checked: "
	skippedSuffix = " failed first"
)

// blocker names the failed check that c (on side, about vm) needs, or "".
func (r *runner) blocker(c check, side Side, vm string) string {
	for _, n := range c.needs {
		for _, done := range r.report.Checks {
			if done.ID != n.id || done.Status == Passed {
				continue
			}
			if done.VM != "" && done.VM != vm {
				continue
			}
			if n.sameSide && done.Side != "" && side != "" && done.Side != side {
				continue
			}
			if done.Status == Skipped {
				// Name the root cause, not the chain.
				root, _, _ := strings.Cut(strings.TrimPrefix(done.Message, skippedPrefix), skippedSuffix)
				return root
			}
			what := done.ID
			switch {
			case done.VM != "":
				what += " for VM " + done.VM
			case done.Side != "":
				what += " on the " + string(done.Side) + " (" + r.name(done.Side) + ")"
			}
			return what
		}
	}
	return ""
}

// failedBefore tells whether check id failed on side.
func (r *runner) failedBefore(id string, side Side) bool {
	for _, c := range r.report.Checks {
		if c.ID == id && c.Side == side && c.Status == Failed {
			return true
		}
	}
	return false
}

func (r *runner) side(side Side) *cluster {
	if side == Source {
		return r.source
	}
	return r.target
}

func (r *runner) name(side Side) string { return r.side(side).name }

func other(side Side) Side {
	if side == Source {
		return Target
	}
	return Source
}
