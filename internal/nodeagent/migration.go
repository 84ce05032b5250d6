package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/virtcontroller"
)

// The node agents carry out a live migration between them; the migration
// controller only decides (target node, deadlines, abort). They meet in the
// VMI's status.migrationState: the target agent publishes its address and
// ports, the source agent streams memory and disks there and reports
// progress, the target takes the VMI over once the guest runs there, and
// only then does the source stop its QEMU.
const (
	// The roles of the ports in targetDirectMigrationNodePorts (port ->
	// role): the migration stream's listener and the NBD server.
	portRoleMigration = 0
	portRoleNBD       = 1
	// progressInterval is how often the source publishes progress.
	progressInterval = time.Second
	// takeoverTimeout bounds the source's wait for the target to run.
	takeoverTimeout = time.Minute
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
	runner *vmiRunner
	// secrets reads the migration certificates straight from the API: the
	// agent may read those few objects only, so it must not cache (list
	// and watch) all Secrets and ConfigMaps.
	secrets       client.Reader
	network       migrationNetwork
	virtNamespace string

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
	// postcopyStarted is set once the source switched to post-copy.
	postcopyStarted bool
	// createdFiles and createdTaps are what this side made, the only
	// things it may remove when it gives up.
	createdFiles, createdTaps []string
}

// reconcile starts or aborts this node's side of the VMI's migration.
func (m *migrator) reconcile(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) {
	state := vmi.Status.MigrationState
	if state == nil || state.MigrationUID == "" || state.Completed {
		return
	}
	if state.Failed || state.AbortRequested {
		// Whatever this node runs of the migration stops; a side that
		// has not started never will.
		m.abort(state.MigrationUID)
		return
	}
	node := m.runner.node
	switch {
	case state.TargetNode == node && vmi.Status.NodeName != node:
		m.ensure(ctx, vmi, qemu.RoleTarget, m.runTarget)
	case state.SourceNode == node && vmi.Status.NodeName == node && state.TargetNodeAddress != "":
		m.ensure(ctx, vmi, qemu.RoleSource, m.runSource)
		m.switchMode(ctx, vmi)
	}
}

// switchMode carries out the controller's request to switch a running
// migration to post-copy (mode PostCopy) when it would not complete in
// time; the source starts post-copy once.
func (m *migrator) switchMode(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) {
	state := vmi.Status.MigrationState
	if state.Mode != kubevirtv1.MigrationPostCopy {
		return
	}
	m.mu.Lock()
	active := m.active[state.MigrationUID]
	start := active != nil && active.source != nil && !active.postcopyStarted
	if start {
		active.postcopyStarted = true
	}
	m.mu.Unlock()
	if start {
		if err := active.source.StartPostcopy(ctx); err != nil {
			m.runner.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "PostCopyFailed", "Migrate", "start post-copy: %v", err)
		}
	}
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
		if err := run(runCtx, snapshot, active); err != nil {
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
	uid := vmi.Status.MigrationState.MigrationUID
	var lastErr error
	for range 5 {
		var current kubevirtv1.VirtualMachineInstance
		if err := m.runner.client.Get(ctx, client.ObjectKeyFromObject(vmi), &current); err != nil {
			return err
		}
		if current.Status.MigrationState == nil || current.Status.MigrationState.MigrationUID != uid {
			return fmt.Errorf("migration %s is no longer the VMI's", uid)
		}
		before := current.DeepCopy()
		change(current.Status.MigrationState)
		lastErr = m.runner.client.Status().Patch(ctx, &current, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if lastErr == nil {
			return nil
		}
	}
	return lastErr
}

// migrationParams turns the KubeVirt migration settings the controller
// copied into migrationState into QEMU's.
func migrationParams(state *kubevirtv1.VirtualMachineInstanceMigrationState, disks int) qemu.MigrationParams {
	params := qemu.DefaultMigrationParams()
	params.TLS = true
	params.TLSHostname = install.MigrationTLSName
	params.PauseBeforeSwitchover = disks > 0
	if config := state.MigrationConfiguration; config != nil {
		params.AutoConverge = config.AllowAutoConverge != nil && *config.AllowAutoConverge
		params.PostCopy = config.AllowPostCopy != nil && *config.AllowPostCopy
		if config.BandwidthPerMigration != nil {
			params.BandwidthBytesPerSecond = config.BandwidthPerMigration.Value()
		}
	}
	if params.PostCopy {
		params.Multifd = false // QEMU does not do post-copy over multifd
	}
	return params
}

// tlsMaterial is the cluster's migration trust: its CA bundle plus the
// peers' CAs, and the node agents' certificate.
func (m *migrator) tlsMaterial(ctx context.Context) (qemu.TLSMaterial, error) {
	var secret corev1.Secret
	if err := m.secrets.Get(ctx, client.ObjectKey{Namespace: m.virtNamespace, Name: install.HandlerCertSecretName}, &secret); err != nil {
		return qemu.TLSMaterial{}, fmt.Errorf("migration certificate Secret %s/%s: %w", m.virtNamespace, install.HandlerCertSecretName, err)
	}
	bundle := []byte{}
	for _, name := range []string{install.CABundleConfigMap, install.ExternalCAConfigMap} {
		var configMap corev1.ConfigMap
		if err := m.secrets.Get(ctx, client.ObjectKey{Namespace: m.virtNamespace, Name: name}, &configMap); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return qemu.TLSMaterial{}, err
		}
		bundle = append(bundle, configMap.Data[install.CABundleKey]...)
		bundle = append(bundle, '\n')
	}
	return qemu.TLSMaterial{CACertPEM: bundle, CertPEM: secret.Data[corev1.TLSCertKey], KeyPEM: secret.Data[corev1.TLSPrivateKeyKey]}, nil
}

func (m *migrator) addTLS(ctx context.Context, instance *qemu.Instance, endpoint qemu.TLSEndpoint) error {
	material, err := m.tlsMaterial(ctx)
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
	dom, sizes, err := m.targetDomain(ctx, vmi)
	if err != nil {
		return err
	}
	cleanup := func() { m.discardTarget(dom, active) }
	for _, disk := range dom.Disks {
		if err := os.MkdirAll(filepath.Dir(disk.Path), 0o755); err != nil {
			cleanup()
			return err
		}
		if err := qemu.CreateRawDisk(disk.Path, sizes[disk.Name]); err != nil {
			cleanup()
			return fmt.Errorf("disk %s: %w", disk.Name, err)
		}
		active.createdFiles = append(active.createdFiles, disk.Path)
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
	if err := m.listenIncoming(ctx, vmi, instance); err != nil {
		cleanup()
		return err
	}
	if _, err := instance.WaitIncoming(ctx); err != nil {
		cleanup()
		return fmt.Errorf("incoming migration: %w", err)
	}
	return m.takeOver(ctx, vmi, instance, dom)
}

// targetDomain is the source's Domain with this node's run directory and
// disk files, and the disk sizes the source has.
func (m *migrator) targetDomain(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (qemu.Domain, map[string]int64, error) {
	r := m.runner
	inputs := r.inputs()
	inputs.RunDir = r.runDir(vmi.UID)
	inputs.DiskPaths = map[string]string{}
	sizes := map[string]int64{}
	for _, volume := range vmi.Spec.Volumes {
		claim := claimName(volume)
		if claim == "" {
			continue
		}
		pv, err := r.storage.boundPV(ctx, vmi.Namespace, claim)
		if err != nil {
			return qemu.Domain{}, nil, err
		}
		size := pv.Spec.Capacity[corev1.ResourceStorage]
		inputs.DiskPaths[volume.Name] = r.storage.filePath(pv.Name)
		sizes[volume.Name] = size.Value()
	}
	dom, err := buildDomain(vmi, inputs)
	return dom, sizes, err
}

// listenIncoming sets up the target's TLS, NBD exports and migration
// listener on the migration address, and publishes them in migrationState.
func (m *migrator) listenIncoming(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, instance *qemu.Instance) error {
	address, err := m.network.Address()
	if err != nil {
		return err
	}
	state := vmi.Status.MigrationState
	disks := mirroredDisks(instance.Domain())
	if err := m.addTLS(ctx, instance, qemu.TLSServer); err != nil {
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
	r.track(vmi, instance)
	if err := m.moveVolumes(ctx, vmi); err != nil {
		return err
	}
	return m.claimVMI(ctx, vmi)
}

// moveVolumes records that this node now holds the VMI's disks.
func (m *migrator) moveVolumes(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	r := m.runner
	for _, volume := range vmi.Spec.Volumes {
		claim := claimName(volume)
		if claim == "" {
			continue
		}
		pv, err := r.storage.boundPV(ctx, vmi.Namespace, claim)
		if err != nil {
			return err
		}
		patch := client.MergeFrom(pv.DeepCopy())
		pv.Annotations[virtcontroller.StorageNodeAnnotation] = r.node
		if err := r.client.Patch(ctx, pv, patch); err != nil {
			return fmt.Errorf("move volume %s to node %s: %w", pv.Name, r.node, err)
		}
	}
	return nil
}

// claimVMI makes this node the VMI's node.
func (m *migrator) claimVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	r := m.runner
	var current kubevirtv1.VirtualMachineInstance
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(vmi), &current); err != nil {
		return err
	}
	patch := client.MergeFrom(current.DeepCopy())
	if current.Labels == nil {
		current.Labels = map[string]string{}
	}
	current.Labels[kubevirtv1.NodeNameLabel] = r.node
	if err := r.client.Patch(ctx, &current, patch); err != nil {
		return err
	}
	statusPatch := client.MergeFrom(current.DeepCopy())
	current.Status.NodeName = r.node
	if state := current.Status.MigrationState; state != nil {
		state.TargetNodeDomainDetected = true
	}
	return r.client.Status().Patch(ctx, &current, statusPatch)
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
		_ = os.RemoveAll(dom.RunDir)
	}
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
	state := vmi.Status.MigrationState
	disks := mirroredDisks(source.Domain())
	params := migrationParams(state, len(disks))
	if params.AutoConverge && source.Accel() == qemu.AccelTCG {
		// QEMU 7.2 corrupted guest memory when auto-converge throttled a
		// TCG guest (the guest kernel oopsed right after the switchover,
		// every run in cclm's tests): a VM must never be lost to a
		// migration, so on TCG the migration runs without it.
		params.AutoConverge = false
		r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "AutoConvergeUnavailable", "Migrate",
			"allowAutoConverge is ignored on node %s: it runs guests with TCG, where QEMU's CPU throttling corrupts guest memory; use allowPostCopy or raise bandwidthPerMigration", r.node)
	}
	migrationAddr, nbdAddr, err := targetAddresses(state)
	if err != nil {
		return err
	}
	if err := m.addTLS(ctx, source, qemu.TLSClient); err != nil {
		return err
	}
	if err := source.ConfigureMigration(ctx, qemu.RoleSource, params); err != nil {
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
		target := qemu.NBDTarget{Addr: nbdAddr, TLS: true, TLSHostname: install.MigrationTLSName, BandwidthBytesPerSecond: params.BandwidthBytesPerSecond}
		if err := source.MirrorDisks(ctx, target, disks); err != nil {
			return cancelAll(fmt.Errorf("mirroring disks: %w", err))
		}
	}
	if err := source.Migrate(ctx, qemu.MigrationURI(migrationAddr)); err != nil {
		return cancelAll(err)
	}
	progress, err := m.waitSource(ctx, vmi, source, disks)
	if err != nil {
		return cancelAll(err)
	}
	return m.finishSource(ctx, vmi, running, progress)
}

// waitSource follows the migration to completion, finishing the mirrors at
// the pre-switchover pause, and publishes progress.
func (m *migrator) waitSource(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, source *qemu.Instance, disks []string) (qemu.MigrationProgress, error) {
	publish := m.progressPublisher(ctx, vmi)
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
	r := m.runner
	target := vmi.Status.MigrationState.TargetNode
	deadline := time.Now().Add(takeoverTimeout)
	for {
		var current kubevirtv1.VirtualMachineInstance
		if err := r.client.Get(ctx, client.ObjectKeyFromObject(vmi), &current); err == nil && current.Status.NodeName == target {
			break
		}
		if time.Now().After(deadline) {
			// The source is paused and the target did not take over: do not
			// risk two copies; say so and keep the source for an operator.
			return fmt.Errorf("target node %s did not report the guest running within %s after the migration completed; the paused source QEMU is kept", target, takeoverTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.forget(vmi.UID)
	_ = running.instance.Quit(ctx)
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
