package vmiruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/trust"
)

// The node agents carry out a live migration between them; the migration
// controller only decides (target node, deadlines, abort). They meet in the
// VMI's status.migrationState: the target agent publishes its address and
// ports, the source agent streams memory and disks there and reports
// progress, the target takes the VMI over once the guest runs there, and
// only then does the source stop its QEMU.
//
// A decentralized (cross-cluster) migration has one side here and two
// VMIs, one per cluster, whose states the synchronization controllers keep
// in step. The target's receiver VMI (WaitingForSync, on no node) becomes
// this node's and Running at the takeover, which completes the migration;
// the source waits for that completion to reach its own VMI, then stops
// its QEMU and its VMI ends Succeeded, keeping its volumes.
const (
	// The roles of the ports in targetDirectMigrationNodePorts (port ->
	// role): the migration stream's listener and the NBD server.
	portRoleMigration = 0
	portRoleNBD       = 1
	// progressInterval is how often the source publishes progress.
	progressInterval = time.Second
	// takeoverTimeout bounds the source's wait for the target to run.
	takeoverTimeout = time.Minute
	// decentralizedTakeoverTimeout bounds it when the target is another
	// cluster: its word crosses two clusters' API servers and
	// synchronization controllers, any of which may be restarting (an API
	// server back from a crash refuses requests until its RBAC caches
	// fill; a new sync leader waits out the old one's lease). The
	// migration controller's synchronization deadline, 5 minutes.
	decentralizedTakeoverTimeout = 5 * time.Minute
)

// migrationNetwork gives a node's address on the migration network.
type migrationNetwork interface {
	// Address is this node's migration address.
	Address() (netip.Addr, error)
	// FreePort finds a port free on the migration address.
	FreePort() (int, error)
}

// migrator runs this node's side of live migrations.
type migrator struct {
	runner *Runtime
	logger *slog.Logger
	// apiReader reads straight from the API, not the informer cache: the
	// migration certificates (the agent may read those few Secrets and
	// ConfigMaps only, so it must not cache them all), and a VMI again
	// after a write conflict (after an API server restart the cache can
	// lag behind for seconds, and every write from it would conflict).
	apiReader     client.Reader
	network       migrationNetwork
	virtNamespace string

	// changes wakes the waits on a VMI (awaitTakeover) when this agent's
	// cache sees it change (notifyVMIChanges).
	changes changeNotifier

	mu sync.Mutex
	// active holds every migration this agent took a side in, by UID,
	// finished ones too: a side runs at most once, however often (and
	// however stale) the reconciles that see the migration are.
	active map[types.UID]*activeMigration
}

// activeMigration is one side of a migration in progress on this node.
type activeMigration struct {
	role     qemu.MigrationRole
	cancel   context.CancelFunc
	target   *qemu.Instance // the incoming QEMU, on the target
	source   *qemu.Instance // the sending QEMU, on the source
	aborting bool
	// postcopyStarted is set once the source switched to post-copy;
	// pausedForMigration once it paused the guest (mode Paused).
	postcopyStarted, pausedForMigration bool
	// createdFiles and createdTaps are what this side made, the only
	// things it may remove when it gives up.
	createdFiles, createdTaps []string
	// vmi and sent are, on the source, the VMI and the sending QEMU's
	// latest figures (for the metrics).
	vmi  types.NamespacedName
	sent *qemu.MigrationProgress
}

// reconcile starts or aborts this node's side of the VMI's migration.
func (m *migrator) reconcile(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) {
	state := vmi.Status.MigrationState
	if state == nil || state.MigrationUID == "" {
		return
	}
	if state.Failed || state.AbortRequested {
		// Whatever this node runs of the migration stops, also when the
		// controller ended it as completed and failed before the handoff;
		// a side that has not started never will.
		m.abort(state.MigrationUID)
		return
	}
	if state.Completed {
		if migrationRole(state, vmi.Status.NodeName, m.runner.node) == qemu.RoleSource && state.IsDecentralizedSource() && vmi.Status.Phase == kubevirtv1.Running {
			// The guest runs in the target cluster, and this side did not
			// stop its source: the agent restarted after the switchover.
			m.ensure(ctx, vmi, qemu.RoleSource, m.finishCompletedSource)
		}
		return
	}
	switch migrationRole(state, vmi.Status.NodeName, m.runner.node) {
	case qemu.RoleTarget:
		if !streamKnown(state) {
			return // the source's configuration comes with its half of the state
		}
		m.ensure(ctx, vmi, qemu.RoleTarget, m.runTarget)
	case qemu.RoleSource:
		m.ensure(ctx, vmi, qemu.RoleSource, m.runSource)
		m.switchMode(ctx, vmi)
	}
}

// migrationRole is this node's side of a migration, "" for none: the
// target once the VMI's migration names it and the VMI is not here yet,
// the source once it names this node and the VMI is here (the source
// prepares while the target starts its QEMU). A decentralized migration has a single side in this cluster; the
// other side's node names are the other cluster's, which may well be the
// names of nodes here too.
func migrationRole(state *kubevirtv1.VirtualMachineInstanceMigrationState, vmiNode, node string) qemu.MigrationRole {
	switch {
	case state.TargetNode == node && vmiNode != node && !state.IsDecentralizedSource():
		return qemu.RoleTarget
	case state.SourceNode == node && vmiNode == node && !state.IsDecentralizedTarget():
		return qemu.RoleSource
	}
	return ""
}

// switchMode carries out the controller's request to switch a running
// migration's mode when it would not complete in time: to post-copy (the
// source starts it once), or to Paused (the source pauses the guest, which
// then dirties nothing; the target resumes it after the switchover, and a
// migration that fails resumes it at the source).
func (m *migrator) switchMode(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) {
	state := vmi.Status.MigrationState
	m.mu.Lock()
	active := m.active[state.MigrationUID]
	m.mu.Unlock()
	if active == nil || active.source == nil {
		return
	}
	switch state.Mode {
	case kubevirtv1.MigrationPostCopy:
		if m.claimPostcopyStart(active) {
			if err := active.source.StartPostcopy(ctx); err != nil {
				m.runner.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "PostCopyFailed", "Migrate", "start post-copy: %v", err)
			}
		}
	case kubevirtv1.MigrationPaused:
		if m.claimPause(active) {
			if err := active.source.Pause(ctx); err != nil {
				m.runner.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "PauseFailed", "Migrate", "pause the guest to let the migration converge: %v", err)
			}
		}
	}
}

// claimPause marks the guest as paused for the migration by this caller;
// false when it was already.
func (m *migrator) claimPause(active *activeMigration) bool {
	return m.claimOnce(&active.pausedForMigration)
}

// resumeIfPaused resumes a source guest this agent paused for a migration
// that then failed: it runs on here, as before.
func (m *migrator) resumeIfPaused(ctx context.Context, source *qemu.Instance, active *activeMigration, cause error) error {
	m.mu.Lock()
	paused := active.pausedForMigration
	m.mu.Unlock()
	if !paused {
		return cause
	}
	if err := source.Resume(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("%w; resuming the guest paused for the migration: %v", cause, err)
	}
	return cause
}

// ensure starts a side once per migration; it runs in the background and
// reports through the VMI's status.
func (m *migrator) ensure(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, role qemu.MigrationRole, run func(context.Context, *kubevirtv1.VirtualMachineInstance, *activeMigration) error) {
	uid := vmi.Status.MigrationState.MigrationUID
	m.mu.Lock()
	if _, running := m.active[uid]; running {
		m.mu.Unlock()
		return
	}
	// A migration outlives the reconcile that started it.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	active := &activeMigration{role: role, cancel: cancel}
	m.active[uid] = active
	m.mu.Unlock()
	snapshot := vmi.DeepCopy()
	go func() {
		defer cancel()
		err := run(runCtx, snapshot, active)
		m.mu.Lock()
		active.sent = nil // over, whatever QEMU last said
		m.mu.Unlock()
		if err != nil {
			m.fail(context.WithoutCancel(ctx), snapshot, role, err)
		}
	}()
}

func (m *migrator) abort(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if active, ok := m.active[uid]; ok && !active.aborting {
		active.aborting = true
		active.cancel()
	}
}

// fail records why this side failed; the source keeps running its guest.
func (m *migrator) fail(ctx context.Context, snapshot *kubevirtv1.VirtualMachineInstance, role qemu.MigrationRole, cause error) {
	reason := fmt.Sprintf("%s node %s: %v", role, m.runner.node, cause)
	err := m.patchMigrationState(ctx, snapshot, func(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
		if state.Completed {
			return
		}
		state.Failed = true
		if state.FailureReason == "" {
			state.FailureReason = reason
		}
		now := metav1.Now()
		state.EndTimestamp = &now
		if state.AbortRequested {
			state.AbortStatus = kubevirtv1.MigrationAbortSucceeded
		}
	})
	if err != nil {
		m.runner.recorder.Eventf(snapshot, nil, corev1.EventTypeWarning, "MigrationStatusLost", "Migrate", "could not record failure %q: %v", reason, err)
	}
	m.runner.recorder.Eventf(snapshot, nil, corev1.EventTypeWarning, "MigrationFailed", "Migrate", "%s", reason)
}

// patchMigrationState re-reads the VMI and applies change to its
// migrationState, retrying on conflicts with the other writers.
func (m *migrator) patchMigrationState(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, change func(*kubevirtv1.VirtualMachineInstanceMigrationState)) error {
	return m.patchVMIStatus(ctx, vmi, func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		change(status.MigrationState)
	})
}

// patchVMIStatus re-reads the VMI and applies change to its status while
// the VMI's migration is still the one of vmi, retrying on conflicts with
// the other writers (statusRetry): from the cache first, then from the API
// itself.
func (m *migrator) patchVMIStatus(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, change func(*kubevirtv1.VirtualMachineInstanceStatus)) error {
	return m.patchVMIStatusFrom(ctx, vmi, nil, change)
}

// patchVMIStatusFrom is patchVMIStatus starting from latest, a copy of
// the VMI just returned by the API (nil: read it), which saves a read and,
// after this agent's own write, the conflict a stale cache would cause.
func (m *migrator) patchVMIStatusFrom(ctx context.Context, vmi, latest *kubevirtv1.VirtualMachineInstance, change func(*kubevirtv1.VirtualMachineInstanceStatus)) error {
	uid := vmi.Status.MigrationState.MigrationUID
	var reader client.Reader = m.runner.client
	retriable := func(err error) bool {
		var done settledError
		return ctx.Err() == nil && !errors.As(err, &done)
	}
	return retry.OnError(statusRetry, retriable, func() error {
		var current kubevirtv1.VirtualMachineInstance
		var err error
		if latest != nil {
			latest.DeepCopyInto(&current)
			latest = nil
		} else {
			err = reader.Get(ctx, client.ObjectKeyFromObject(vmi), &current)
		}
		reader = m.apiReader // a retry reads what the API has now
		if err != nil {
			return err
		}
		if current.Status.MigrationState == nil || current.Status.MigrationState.MigrationUID != uid {
			return settled(fmt.Errorf("migration %s is no longer the VMI's", uid))
		}
		before := current.DeepCopy()
		change(&current.Status)
		return m.runner.client.Status().Patch(ctx, &current, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}

// statusRetry spaces the retries of a status patch that lost to another
// writer: 10, 30, 90 and 270 ms, a migration's writers being few and fast.
var statusRetry = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 3, Jitter: 0.1, Steps: 5}

// settledError is an outcome that no retry changes.
type settledError struct{ error }

func (e settledError) Unwrap() error { return e.error }

func settled(err error) error { return settledError{err} }

// migrationParams turns the KubeVirt migration settings the controller
// copied into migrationState into QEMU's. Both sides must agree on the
// stream's format (multifd channels, post-copy), which the configuration
// decides: a cross-cluster receiver therefore goes by the source cluster's
// (streamConfiguration).
func migrationParams(state *kubevirtv1.VirtualMachineInstanceMigrationState, disks int) qemu.MigrationParams {
	params := qemu.DefaultMigrationParams()
	params.TLS = true
	params.TLSHostname = trust.MigrationTLSName
	params.PauseBeforeSwitchover = disks > 0
	if config := streamConfiguration(state); config != nil {
		params.AutoConverge = config.AllowAutoConverge != nil && *config.AllowAutoConverge
		params.PostCopy = config.AllowPostCopy != nil && *config.AllowPostCopy
		if config.BandwidthPerMigration != nil {
			params.BandwidthBytesPerSecond = config.BandwidthPerMigration.Value()
		}
		if threads := config.ParallelMigrationThreads; threads != nil {
			params.Multifd, params.MultifdChannels = *threads > 0, int(*threads)
		}
	}
	return params
}

// streamConfiguration is the configuration that decides the migration
// stream: the source's own, which a cross-cluster receiver has from the
// source's half of the state (nil until it arrived: see streamKnown).
func streamConfiguration(state *kubevirtv1.VirtualMachineInstanceMigrationState) *kubevirtv1.MigrationConfiguration {
	if state.IsDecentralizedTarget() {
		if state.SourceState == nil {
			return nil
		}
		return state.SourceState.MigrationConfiguration
	}
	return state.MigrationConfiguration
}

// streamKnown tells whether this side knows the stream's format: a
// cross-cluster receiver waits for the source's configuration before it
// prepares its QEMU, which could not change its format afterwards.
func streamKnown(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	return !state.IsDecentralizedTarget() || streamConfiguration(state) != nil
}

// tlsMaterial is the cluster's migration trust: its CA bundle plus the
// peers' CAs, and the node agents' certificate.
func (m *migrator) tlsMaterial(ctx context.Context) (qemu.TLSMaterial, error) {
	var secret corev1.Secret
	if err := m.apiReader.Get(ctx, client.ObjectKey{Namespace: m.virtNamespace, Name: trust.HandlerCertSecretName}, &secret); err != nil {
		return qemu.TLSMaterial{}, fmt.Errorf("migration certificate Secret %s/%s: %w", m.virtNamespace, trust.HandlerCertSecretName, err)
	}
	bundle := []byte{}
	for _, name := range []string{trust.CABundleConfigMap, trust.ExternalCAConfigMap} {
		var configMap corev1.ConfigMap
		if err := m.apiReader.Get(ctx, client.ObjectKey{Namespace: m.virtNamespace, Name: name}, &configMap); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return qemu.TLSMaterial{}, err
		}
		bundle = append(bundle, configMap.Data[trust.BundleKey]...)
		bundle = append(bundle, '\n')
	}
	return qemu.TLSMaterial{CACertPEM: bundle, CertPEM: secret.Data[corev1.TLSCertKey], KeyPEM: secret.Data[corev1.TLSPrivateKeyKey]}, nil
}

// prefetchTLS reads the migration trust in the background, while QEMU
// starts or the other side gets ready, and returns the wait for it.
func (m *migrator) prefetchTLS(ctx context.Context) func() (qemu.TLSMaterial, error) {
	type fetched struct {
		material qemu.TLSMaterial
		err      error
	}
	done := make(chan fetched, 1)
	go func() {
		material, err := m.tlsMaterial(ctx)
		done <- fetched{material, err}
	}()
	return sync.OnceValues(func() (qemu.TLSMaterial, error) {
		f := <-done
		return f.material, f.err
	})
}

// addTLS loads the migration trust into QEMU as its endpoint's
// credentials.
func (m *migrator) addTLS(ctx context.Context, instance *qemu.Instance, endpoint qemu.TLSEndpoint, trust func() (qemu.TLSMaterial, error)) error {
	material, err := trust()
	if err != nil {
		return err
	}
	dir := filepath.Join(instance.Domain().RunDir, "tls-"+string(endpoint))
	if err := qemu.WriteTLSDir(dir, material); err != nil {
		return err
	}
	return instance.AddTLSCredentials(ctx, dir, endpoint)
}

// mirroredDisks are the names of a domain's writable disks, the ones a
// migration copies.
func mirroredDisks(dom qemu.Domain) []string {
	var names []string
	for _, disk := range dom.Disks {
		if !disk.ReadOnly {
			names = append(names, disk.Name)
		}
	}
	return names
}

// ---- target side ----

// runTarget prepares an incoming QEMU, publishes where the source sends
// to, waits for the migration, runs the guest and takes the VMI over.
func (m *migrator) runTarget(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, active *activeMigration) error {
	r := m.runner
	dom, volumes, err := m.targetDomain(ctx, vmi)
	if err != nil {
		return err
	}
	if found, err := m.recoverIncoming(ctx, vmi, dom); found {
		return err
	}
	trust := m.prefetchTLS(ctx) // read while QEMU starts
	cleanup := func() { m.discardTarget(dom, active) }
	if err := prepareDisks(dom, volumes, active); err != nil {
		cleanup()
		return err
	}
	for _, nic := range dom.NICs {
		if err := r.env.CreateTap(nic.Tap); err != nil {
			cleanup()
			return err
		}
		active.createdTaps = append(active.createdTaps, nic.Tap)
	}
	instance, err := r.env.Launch(ctx, dom, qemu.Options{Incoming: true})
	if err != nil {
		cleanup()
		return err
	}
	active.target = instance
	if err := m.listenIncoming(ctx, vmi, instance, trust); err != nil {
		cleanup()
		return err
	}
	if _, err := instance.WaitIncoming(ctx); err != nil {
		cleanup()
		return fmt.Errorf("incoming migration: %w", err)
	}
	return m.takeOver(ctx, vmi, instance, dom)
}

// recoverIncoming handles the incoming QEMU this agent started before it
// restarted, if the target's run directory holds one (found). If the guest
// had arrived, the agent takes it over, as it would have: the source is
// paused for good by then, and this QEMU is the VM. Otherwise nothing
// follows that migration any more (its QMP session and deadlines died with
// the agent): the QEMU is stopped and this side fails; the source cancels
// and runs on, and the next migration starts clean.
func (m *migrator) recoverIncoming(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, dom qemu.Domain) (found bool, err error) {
	pid, running := qemu.RunningIn(dom.RunDir)
	if !running {
		return false, nil
	}
	instance, err := qemu.Adopt(ctx, dom.RunDir)
	if err == nil {
		if p, err := instance.QueryMigrate(ctx); err == nil && p.Status == qemu.MigrationCompleted {
			m.logger.Info("the guest had arrived before the node agent restarted; taking it over", "domain", dom.Name, "pid", pid)
			return true, m.takeOver(ctx, vmi, instance, dom)
		}
		_ = instance.Kill()
		_ = instance.Close()
	} else if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("the node agent restarted during the incoming migration and could not stop the incoming QEMU (pid %d) it had started: %w", pid, err)
	}
	return true, fmt.Errorf("the node agent restarted during the incoming migration: it stopped the incoming QEMU (pid %d) it had started, which nothing followed any more; the guest runs on at the source", pid)
}

// targetVolume is what the target knows of a disk's volume.
type targetVolume struct {
	size int64
	// local: the volume was provisioned on this node (a receiver's, in a
	// decentralized migration), so its file is here already.
	local bool
}

// targetDomain is the source's Domain with this node's run directory and
// disk files, and the disks' volumes. A receiver's PVCs may still be
// unbound: the migration controller selects this node for them when it
// chooses the target, and this node's provisioner binds them.
func (m *migrator) targetDomain(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (qemu.Domain, map[string]targetVolume, error) {
	r := m.runner
	inputs := r.inputs()
	inputs.RunDir = r.runDir(vmi.UID)
	inputs.DiskPaths = map[string]string{}
	volumes := map[string]targetVolume{}
	for _, volume := range vmi.Spec.Volumes {
		claim := volume.ClaimName()
		if claim == "" {
			continue
		}
		bound, err := r.storage.WaitBound(ctx, vmi.Namespace, claim)
		if err != nil {
			return qemu.Domain{}, nil, fmt.Errorf("volume %s: %w", volume.Name, err)
		}
		inputs.DiskPaths[volume.Name] = bound.Path
		volumes[volume.Name] = targetVolume{size: bound.Bytes, local: bound.Local}
	}
	// The target's own copies of the Secrets and ConfigMaps: read-only
	// disks are not mirrored, each side makes its own.
	waiting, err := r.makeConfigDisks(ctx, vmi, inputs.RunDir, inputs.DiskPaths)
	if err == nil && waiting != "" {
		err = errors.New(waiting)
	}
	if err != nil {
		return qemu.Domain{}, nil, err
	}
	dom, err := buildDomain(vmi, inputs)
	return dom, volumes, err
}

// prepareDisks makes the files the incoming disks are written to. A volume
// provisioned on this node has its file, which belongs to the volume and
// stays whatever happens; any other volume (in-cluster, the source node's)
// gets a new file here, which a failed target removes again.
func prepareDisks(dom qemu.Domain, volumes map[string]targetVolume, active *activeMigration) error {
	for _, disk := range dom.Disks {
		if disk.ReadOnly {
			continue // a config disk, made from this cluster's object; not mirrored
		}
		volume := volumes[disk.Name]
		if _, err := os.Stat(disk.Path); err == nil && volume.local {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(disk.Path), 0o755); err != nil {
			return err
		}
		if err := qemu.CreateRawDisk(disk.Path, volume.size); err != nil {
			return fmt.Errorf("disk %s: %w", disk.Name, err)
		}
		active.createdFiles = append(active.createdFiles, disk.Path)
	}
	return nil
}

// listenIncoming sets up the target's TLS, NBD exports and migration
// listener on the migration address, and publishes them in migrationState.
func (m *migrator) listenIncoming(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, instance *qemu.Instance, trust func() (qemu.TLSMaterial, error)) error {
	address, err := m.network.Address()
	if err != nil {
		return err
	}
	state := vmi.Status.MigrationState
	disks := mirroredDisks(instance.Domain())
	if err := m.addTLS(ctx, instance, qemu.TLSServer, trust); err != nil {
		return err
	}
	if err := instance.ConfigureMigration(ctx, qemu.RoleTarget, migrationParams(state, len(disks))); err != nil {
		return err
	}
	nbdPort := 0
	if len(disks) > 0 {
		if nbdPort, err = m.network.FreePort(); err != nil {
			return err
		}
		if err := instance.StartNBDServer(ctx, net.JoinHostPort(address.String(), strconv.Itoa(nbdPort)), true); err != nil {
			return err
		}
		if err := instance.ExportDisks(ctx, disks, true); err != nil {
			return err
		}
	}
	listen, err := instance.MigrateIncoming(ctx, qemu.MigrationURI(net.JoinHostPort(address.String(), "0")))
	if err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("migration listener %q: %w", listen, err)
	}
	migrationPort, _ := strconv.Atoi(port)
	return m.patchMigrationState(ctx, vmi, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		now := metav1.Now()
		s.TargetNodeAddress = address.String()
		s.TargetDirectMigrationNodePorts = map[string]int{strconv.Itoa(migrationPort): portRoleMigration}
		if nbdPort != 0 {
			s.TargetDirectMigrationNodePorts[strconv.Itoa(nbdPort)] = portRoleNBD
		}
		s.TargetNodeDomainDetected = true
		s.TargetNodeDomainReadyTimestamp = &now
	})
}

// takeOver runs the guest here once its state arrived and makes this node
// the VMI's: nodeName, label, and the disks' storage node.
func (m *migrator) takeOver(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, instance *qemu.Instance, dom qemu.Domain) error {
	r := m.runner
	if len(mirroredDisks(dom)) > 0 {
		if err := instance.StopNBDServer(ctx); err != nil {
			return err
		}
	}
	if err := instance.Resume(ctx); err != nil {
		return err
	}
	if err := instance.AnnounceSelf(ctx); err != nil {
		r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "AnnounceFailed", "Migrate", "announce-self: %v", err)
	}
	r.track(vmi, instance, time.Time{}) // the guest booted on the source
	return m.recordTakeover(ctx, vmi)
}

// takeoverRecordTimeout bounds how long a target that runs the guest keeps
// trying to record it: as long as a decentralized source waits for that
// record with its paused copy.
const takeoverRecordTimeout = decentralizedTakeoverTimeout

// recordTakeover writes that this node runs the guest now (its volumes,
// the VMI's node and, across clusters, the migration completed), retrying
// until the API takes it: the guest already runs here and the source is
// paused, so giving up on a conflict or an API server restart would leave
// the only running copy where no object says it is. An abort does not stop
// it for the same reason.
func (m *migrator) recordTakeover(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), takeoverRecordTimeout)
	defer cancel()
	var lastErr error
	err := takeoverRetry.DelayFunc().Until(ctx, true, false, func(ctx context.Context) (bool, error) {
		err := m.claimVMI(ctx, vmi)
		if err == nil || errors.As(err, new(settledError)) {
			return true, err
		}
		if lastErr == nil {
			m.runner.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "TakeoverNotRecorded", "Migrate",
				"the guest runs on node %s; recording it failed, retrying for up to %s: %v", m.runner.node, takeoverRecordTimeout, err)
		}
		lastErr = err
		return false, nil
	})
	if err != nil && lastErr != nil && ctx.Err() != nil {
		return fmt.Errorf("the guest runs on node %s, but recording it failed for %s: %w", m.runner.node, takeoverRecordTimeout, lastErr)
	}
	return err
}

// takeoverRetry spaces the attempts to record a takeover: quickly at
// first (a conflict), then every 5 s (an API server away).
var takeoverRetry = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 10, Cap: 5 * time.Second}

// moveVolumes records that this node now holds the VMI's disks.
func (m *migrator) moveVolumes(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	for _, claim := range vmi.Spec.ClaimNames() {
		if err := m.runner.storage.Adopt(ctx, vmi.Namespace, claim); err != nil {
			return err
		}
	}
	return nil
}

// claimVMI makes this node the VMI's node (see claimStatus), and the
// holder of its volumes. The status goes first, since the source waits
// for it with its paused guest; the volumes are moved meanwhile, the
// label and finalizer once it is written, each at most a round trip.
// Any failure makes the caller claim again, which is idempotent.
func (m *migrator) claimVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	r := m.runner
	volumesMoved := make(chan error, 1)
	go func() { volumesMoved <- m.moveVolumes(ctx, vmi) }()
	// From the API: the finalizers are patched as a whole list.
	var current kubevirtv1.VirtualMachineInstance
	if err := m.apiReader.Get(ctx, client.ObjectKeyFromObject(vmi), &current); err != nil {
		return errors.Join(err, <-volumesMoved)
	}
	var failedMeanwhile *kubevirtv1.VirtualMachineInstanceMigrationState
	err := m.patchVMIStatusFrom(ctx, vmi, &current, func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		claimStatus(status, r.node, metav1.Now())
		if state := status.MigrationState; state.IsDecentralizedTarget() && state.Failed {
			failedMeanwhile = state
		}
	})
	if err != nil {
		return errors.Join(err, <-volumesMoved)
	}
	if err := errors.Join(m.labelVMI(ctx, &current), <-volumesMoved); err != nil || failedMeanwhile == nil {
		return err
	}
	// The guest runs here and the source is paused: this copy is the one
	// that lives, and an operator settles the migration's record.
	return settled(fmt.Errorf("the guest runs on node %s, but the migration was marked failed meanwhile (%s); the source cluster keeps its paused copy",
		r.node, failedMeanwhile.FailureReason))
}

// labelVMI gives the VMI this node's label and the agent's finalizer;
// read is the VMI as read from the API before the claim's status write,
// which changed neither (the finalizers are patched as a whole list).
func (m *migrator) labelVMI(ctx context.Context, read *kubevirtv1.VirtualMachineInstance) error {
	r := m.runner
	current := read.DeepCopy()
	patch := client.MergeFrom(read)
	if current.Labels == nil {
		current.Labels = map[string]string{}
	}
	current.Labels[kubevirtv1.NodeNameLabel] = r.node
	// A receiver VMI (decentralized) never had a node, so not the
	// finalizer either: from now on it guards this node's guest.
	controllerutil.AddFinalizer(current, Finalizer)
	return r.client.Patch(ctx, current, patch)
}

// claimStatus is pure: the VMI's status once this node runs the migrated
// guest. The node is the VMI's. A decentralized migration completes here,
// on the target (the source cluster learns it from this VMI), unless it
// was marked failed meanwhile; and the receiver VMI, WaitingForSync until
// now, is Running.
func claimStatus(status *kubevirtv1.VirtualMachineInstanceStatus, node string, now metav1.Time) {
	status.NodeName = node
	state := status.MigrationState
	if state == nil {
		return
	}
	state.TargetNodeDomainDetected = true
	if !state.IsDecentralizedTarget() {
		return
	}
	enterPhase(status, kubevirtv1.Running, now)
	if !state.Failed {
		state.Completed = true
		state.EndTimestamp = &now
	}
}

// discardTarget removes a target that will not run: QEMU, taps, and the
// disk files that were filled for nothing.
func (m *migrator) discardTarget(dom qemu.Domain, active *activeMigration) {
	if active.target != nil && active.target.Alive() {
		_ = active.target.Kill()
	}
	for _, tap := range active.createdTaps {
		_ = m.runner.env.DeleteTap(tap)
	}
	for _, path := range active.createdFiles {
		_ = os.Remove(path)
	}
	if active.target != nil {
		// What QEMU said is the one clue to why an incoming migration
		// failed (a device it could not load, a TLS refusal): keep it in
		// the agent's log before the run directory goes.
		if tail := fileTail(dom.Paths().Log, 2048); tail != "" {
			m.logger.Warn("discarding the incoming QEMU of a failed migration", "domain", dom.Name, "qemuLog", tail)
		}
		_ = os.RemoveAll(dom.RunDir)
	}
}

// fileTail is the last n bytes of a file, "" if it cannot be read.
func fileTail(path string, n int64) string {
	file, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer file.Close()
	if info, err := file.Stat(); err == nil && info.Size() > n {
		_, _ = file.Seek(info.Size()-n, io.SeekStart)
	}
	data, _ := io.ReadAll(io.LimitReader(file, n))
	return strings.TrimSpace(string(data))
}

// ---- source side ----

// runSource mirrors the disks and streams the memory to the target, then
// stops the source once the guest runs on the target.
func (m *migrator) runSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, active *activeMigration) error {
	r := m.runner
	running := r.adopt(ctx, vmi)
	if running == nil {
		return errors.New("the source QEMU is not running")
	}
	source := running.instance
	m.mu.Lock()
	active.source = source
	m.mu.Unlock()
	disks := mirroredDisks(source.Domain())
	if source.Adopted() {
		// This agent restarted with the migration under way: the QEMU may
		// still be sending, unattended, toward a target that is being torn
		// down, and would stop the guest for a switchover nobody completes.
		// Cancel what QEMU runs; the guest runs on here.
		if p, err := source.QueryMigrate(ctx); err == nil && p.Status != qemu.MigrationNone && !p.Status.Finished() {
			cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := source.CancelMigration(cancelCtx, disks); err != nil {
				return fmt.Errorf("the node agent restarted during the migration (QEMU was %s); cancelling it: %w", p.Status, err)
			}
			return fmt.Errorf("the node agent restarted during the migration (QEMU was %s): cancelled it, the guest runs on at the source", p.Status)
		}
	}
	// Prepared while the target starts its QEMU: neither waits on the other.
	params := migrationParams(vmi.Status.MigrationState, len(disks))
	// Read here, not in the background: nothing else waits meanwhile.
	readTrust := func() (qemu.TLSMaterial, error) { return m.tlsMaterial(ctx) }
	if err := m.addTLS(ctx, source, qemu.TLSClient, readTrust); err != nil {
		return err
	}
	if err := source.ConfigureMigration(ctx, qemu.RoleSource, params); err != nil {
		return err
	}
	vmi, err := m.awaitTargetReady(ctx, vmi)
	if err != nil || vmi == nil {
		return err
	}
	migrationAddr, nbdAddr, err := targetAddresses(vmi.Status.MigrationState)
	if err != nil {
		return err
	}
	cancelAll := func(cause error) error {
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := source.CancelMigration(cancelCtx, disks); err != nil {
			return fmt.Errorf("%w; cancelling left: %v", cause, err)
		}
		return cause
	}
	if len(disks) > 0 {
		target := qemu.NBDTarget{Addr: nbdAddr, TLS: true, TLSHostname: trust.MigrationTLSName, BandwidthBytesPerSecond: params.BandwidthBytesPerSecond}
		if err := source.MirrorDisks(ctx, target, disks); err != nil {
			return cancelAll(fmt.Errorf("mirroring disks: %w", err))
		}
	}
	if err := source.Migrate(ctx, qemu.MigrationURI(migrationAddr)); err != nil {
		return cancelAll(err)
	}
	waitCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	watch := m.watchConvergence(vmi, source, active, params, abort)
	progress, err := m.waitSource(waitCtx, vmi, source, disks, watch, active)
	if notConverging := convergenceFailure(waitCtx); notConverging != nil {
		// The reason is recorded before the cancel: the target, whose
		// QEMU ends with the stream, would otherwise record its own
		// ("connection lost") first.
		m.fail(ctx, vmi, qemu.RoleSource, notConverging)
		if err := cancelAll(notConverging); err != notConverging {
			m.runner.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "MigrationFailed", "Migrate", "%v", err)
		}
		return nil
	}
	if err != nil {
		return m.resumeIfPaused(ctx, source, active, cancelAll(err))
	}
	return m.finishSource(ctx, vmi, running, progress)
}

// waitSource follows the migration to completion, finishing the mirrors at
// the pre-switchover pause, and publishes progress.
func (m *migrator) waitSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, source *qemu.Instance, disks []string, watch *convergenceWatch, active *activeMigration) (qemu.MigrationProgress, error) {
	publishProgress := m.progressPublisher(ctx, vmi)
	publish := func(p qemu.MigrationProgress) {
		m.recordSent(active, vmi, p)
		watch.observe(ctx, p)
		publishProgress(p)
	}
	progress, err := source.WaitMigration(ctx, publish)
	if err != nil {
		return progress, err
	}
	if progress.Status == qemu.MigrationPreSwitchover {
		if err := source.CompleteMirrors(ctx, disks); err != nil {
			return progress, err
		}
		if err := source.ContinueMigration(ctx); err != nil {
			return progress, err
		}
		if progress, err = source.WaitMigration(ctx, publish); err != nil {
			return progress, err
		}
	}
	if progress.Status != qemu.MigrationCompleted {
		return progress, fmt.Errorf("migration ended %s: %s", progress.Status, progress.Error)
	}
	publish(progress)
	return progress, nil
}

// recordSent keeps the sending QEMU's latest figures for the metrics.
func (m *migrator) recordSent(active *activeMigration, vmi *kubevirtv1.VirtualMachineInstance, p qemu.MigrationProgress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	active.vmi, active.sent = client.ObjectKeyFromObject(vmi), &p
}

// transfers are this node's outgoing migrations still under way, with
// their latest figures (metrics.TransferCollector).
func (m *migrator) transfers() []metrics.Transfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []metrics.Transfer
	for _, active := range m.active {
		if p := active.sent; p != nil && !p.Status.Finished() {
			out = append(out, metrics.Transfer{
				Namespace: active.vmi.Namespace, Name: active.vmi.Name,
				TotalBytes: p.TotalBytes, ProcessedBytes: p.TransferredBytes, RemainingBytes: p.RemainingBytes,
				DirtyRate: float64(p.DirtyBytesRate), TransferRate: p.Mbps * 1e6 / 8,
			})
		}
	}
	return out
}

// progressPublisher writes progress into migrationState at most once per
// progressInterval.
func (m *migrator) progressPublisher(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) func(qemu.MigrationProgress) {
	var last time.Time
	return func(p qemu.MigrationProgress) {
		final := p.Status == qemu.MigrationCompleted
		if !final && time.Since(last) < progressInterval {
			return
		}
		last = time.Now()
		_ = m.patchMigrationState(ctx, vmi, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
			s.Progress = progressOf(p)
		})
	}
}

func progressOf(p qemu.MigrationProgress) *kubevirtv1.MigrationProgress {
	now := metav1.Now()
	return &kubevirtv1.MigrationProgress{
		TransferredBytes: p.TransferredBytes, RemainingBytes: p.RemainingBytes, TotalBytes: p.TotalBytes,
		DirtyRateBytesPerSecond: p.DirtyBytesRate, Iteration: p.Iteration,
		ExpectedDowntimeMs: p.ExpectedDowntime.Milliseconds(), DowntimeMs: p.Downtime.Milliseconds(),
		UpdatedTimestamp: &now,
	}
}

// finishSource waits until the target runs the guest, then stops the
// source QEMU and frees what the VMI held here, and marks the migration
// completed.
func (m *migrator) finishSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, running *runningVMI, progress qemu.MigrationProgress) error {
	if vmi.Status.MigrationState.IsDecentralizedSource() {
		return m.finishDecentralizedSource(ctx, vmi, running, progress)
	}
	r := m.runner
	target := vmi.Status.MigrationState.TargetNode
	claimed := func(current *kubevirtv1.VirtualMachineInstance) (bool, error) {
		return current.Status.NodeName == target, nil
	}
	if _, err := m.awaitTakeover(ctx, vmi, takeoverTimeout, claimed, fmt.Sprintf("target node %s did not report the guest running", target)); err != nil {
		return err
	}
	r.forget(vmi.UID)
	// Killed, not quit: the guest's state and disks are the target's now,
	// and this copy's files go next; QEMU's orderly exit would only add
	// its own cleanup to the migration's end (libvirt kills it too).
	_ = running.instance.Kill()
	r.deleteTaps(running.instance.Domain())
	for _, disk := range running.instance.Domain().Disks {
		_ = os.Remove(disk.Path)
	}
	_ = os.RemoveAll(running.instance.Domain().RunDir)
	r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Migrated", "Migrate", "migrated to node %s in %s (downtime %s)", target, progress.TotalTime, progress.Downtime)
	return m.patchMigrationState(ctx, vmi, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		now := metav1.Now()
		s.Completed = true
		s.EndTimestamp = &now
		s.Progress = progressOf(progress)
	})
}

// finishDecentralizedSource waits until the target cluster says that the
// migration completed there (its sync controller copies that into this
// VMI), then stops the source QEMU; the VMI then ends Succeeded (see
// endOf), its taps and run directory go. The disk files stay: the source
// VM keeps its volumes, as upstream. Completion is the target's to say,
// never this side's.
func (m *migrator) finishDecentralizedSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, running *runningVMI, progress qemu.MigrationProgress) error {
	r := m.runner
	uid := vmi.Status.MigrationState.MigrationUID
	completed := func(current *kubevirtv1.VirtualMachineInstance) (bool, error) {
		return decentralizedTakeover(current.Status.MigrationState, uid)
	}
	current, err := m.awaitTakeover(ctx, vmi, decentralizedTakeoverTimeout, completed, "the target cluster did not report the migration completed")
	if err != nil {
		return err
	}
	stopCtx := context.WithoutCancel(ctx)
	if err := running.instance.Quit(stopCtx); err != nil {
		_ = running.instance.Kill()
	}
	// The final figures (downtime above all), as the classic source
	// records them with completed; a progress write lost to a conflict
	// during the switchover must not leave them out.
	if err := m.patchMigrationState(stopCtx, current, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.Progress = progressOf(progress)
	}); err != nil {
		r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "MigrationStatusLost", "Migrate", "could not record the final progress: %v", err)
	}
	r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Migrated", "Migrate", "migrated to node %s of the target cluster in %s (downtime %s)",
		current.Status.MigrationState.TargetNode, progress.TotalTime, progress.Downtime)
	return r.ended(stopCtx, current, running)
}

// finishCompletedSource stops the source of a decentralized migration the
// target cluster reported completed while this agent was not following it
// (it restarted after the switchover): the source QEMU, paused for good
// since the switchover, quits, and the VMI ends Succeeded. Without it the
// paused QEMU would stay, and the VMI Running, for ever.
func (m *migrator) finishCompletedSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, _ *activeMigration) error {
	r := m.runner
	running := r.adopt(ctx, vmi)
	if running == nil {
		return r.ended(ctx, vmi, nil)
	}
	if err := running.instance.Quit(ctx); err != nil {
		_ = running.instance.Kill()
	}
	r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Migrated", "Migrate", "migrated to node %s of the target cluster; the source, left paused when this node agent restarted, is stopped",
		vmi.Status.MigrationState.TargetNode)
	return r.ended(ctx, vmi, running)
}

// decentralizedTakeover is pure: whether the target cluster runs the guest
// of migration uid by the VMI's migrationState, and the error that keeps
// the paused source if it never will.
func decentralizedTakeover(state *kubevirtv1.VirtualMachineInstanceMigrationState, uid types.UID) (bool, error) {
	switch {
	case state == nil || state.MigrationUID != uid:
		return false, fmt.Errorf("the VMI's migrationState is no longer migration %s's; the paused source QEMU is kept", uid)
	case state.Failed:
		reason := state.FailureReason
		if reason == "" {
			reason = "no reason given"
		}
		return false, fmt.Errorf("the migration failed after this node's QEMU had sent the guest (%s); the paused source QEMU is kept so that the guest never runs twice", reason)
	}
	return state.Completed, nil
}

// awaitTargetReady waits until the target published where to send, and
// returns the VMI as it is then. It returns nil, nil when the migration
// ended first (the controller's target deadline, an abort): this side
// started nothing then, and has nothing to record.
func (m *migrator) awaitTargetReady(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (*kubevirtv1.VirtualMachineInstance, error) {
	uid := vmi.Status.MigrationState.MigrationUID
	current, err := m.awaitVMI(ctx, client.ObjectKeyFromObject(vmi), func(current *kubevirtv1.VirtualMachineInstance) (bool, error) {
		state := current.Status.MigrationState
		return state == nil || state.MigrationUID != uid || state.Failed || state.AbortRequested || state.TargetNodeAddress != "", nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil // aborted: the abort's writer records it
		}
		return nil, err
	}
	if state := current.Status.MigrationState; state == nil || state.MigrationUID != uid || state.TargetNodeAddress == "" {
		return nil, nil
	}
	return current, nil
}

// vmiRecheck is how often awaitVMI reads the VMI without being woken
// (notifyVMIChanges wakes it at every change the cache sees): a safety
// net, not the way it learns.
const vmiRecheck = 500 * time.Millisecond

// awaitVMI waits until done says the VMI is as wanted, reading it from
// the cache each time this agent sees it change, until ctx ends.
func (m *migrator) awaitVMI(ctx context.Context, key types.NamespacedName, done func(*kubevirtv1.VirtualMachineInstance) (bool, error)) (*kubevirtv1.VirtualMachineInstance, error) {
	recheck := time.NewTicker(vmiRecheck)
	defer recheck.Stop()
	for {
		changed := m.changes.next(key) // before the read: no change slips between
		var current kubevirtv1.VirtualMachineInstance
		if err := m.runner.client.Get(ctx, key, &current); err == nil {
			ok, err := done(&current)
			if err != nil || ok {
				return &current, err
			}
		}
		select {
		case <-changed:
		case <-recheck.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// awaitTakeover waits until takenOver says the migrated guest runs at the
// target. Cancelling ctx does not end it, only the timeout: on timeout the
// source stays paused, for an operator: never two running copies.
func (m *migrator) awaitTakeover(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, timeout time.Duration, takenOver func(*kubevirtv1.VirtualMachineInstance) (bool, error), notYet string) (*kubevirtv1.VirtualMachineInstance, error) {
	waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	current, err := m.awaitVMI(waitCtx, client.ObjectKeyFromObject(vmi), takenOver)
	if current == nil && waitCtx.Err() != nil {
		// The source is paused and the target did not take over: do not
		// risk two copies; say so and keep the source for an operator.
		return nil, fmt.Errorf("%s within %s after the migration completed; the paused source QEMU is kept", notYet, timeout)
	}
	return current, err
}

// changeNotifier hands out channels that close when a VMI changes.
type changeNotifier struct {
	mu      sync.Mutex
	waiting map[types.NamespacedName]chan struct{}
}

// next is closed at the next notify for key.
func (n *changeNotifier) next(key types.NamespacedName) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.waiting == nil {
		n.waiting = map[types.NamespacedName]chan struct{}{}
	}
	ch, ok := n.waiting[key]
	if !ok {
		ch = make(chan struct{})
		n.waiting[key] = ch
	}
	return ch
}

// notify wakes whoever waits on key.
func (n *changeNotifier) notify(key types.NamespacedName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.waiting[key]; ok {
		close(ch)
		delete(n.waiting, key)
	}
}

// targetAddresses reads the target's migration and NBD addresses from
// migrationState.
func targetAddresses(state *kubevirtv1.VirtualMachineInstanceMigrationState) (migration, nbd string, err error) {
	for port, role := range state.TargetDirectMigrationNodePorts {
		address := net.JoinHostPort(state.TargetNodeAddress, port)
		switch role {
		case portRoleMigration:
			migration = address
		case portRoleNBD:
			nbd = address
		}
	}
	if migration == "" {
		return "", "", fmt.Errorf("the target published no migration port (targetDirectMigrationNodePorts %v)", state.TargetDirectMigrationNodePorts)
	}
	return migration, nbd, nil
}
