package synccontroller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The pusher follows every decentralized VMIM of the cluster: it publishes
// the controller's address in the VMIM's status, fills in the VMI's own
// half, pushes the VMI's status to the peer, cancels the peer's side when
// the local one goes away, and fails the migration when the peer is silent
// too long. The decisions are planPush's; this file does the I/O.

func (c *controller) setupPusher(mgr ctrl.Manager) error {
	decentralized := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return roleOf(obj.(*kubevirtv1.VirtualMachineInstanceMigration)) != 0
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("sync-pusher").
		For(&kubevirtv1.VirtualMachineInstanceMigration{}, builder.WithPredicates(decentralized)).
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(c.migrationsOfVMI)).
		// Calls to a silent peer take up to CallTimeout; other migrations
		// must not wait for them.
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: 4}).
		Complete(reconcile.Func(c.reconcileMigration))
}

// migrationsOfVMI maps a VMI's change to its decentralized migrations.
func (c *controller) migrationsOfVMI(ctx context.Context, vmi client.Object) []reconcile.Request {
	var migrations kubevirtv1.VirtualMachineInstanceMigrationList
	if err := c.client.List(ctx, &migrations, client.InNamespace(vmi.GetNamespace()), client.MatchingFields{indexVMIName: vmi.GetName()}); err != nil {
		c.logger.Error(err, "list the migrations of a VMI", "vmi", client.ObjectKeyFromObject(vmi).String())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(migrations.Items))
	for i := range migrations.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&migrations.Items[i])})
	}
	return requests
}

func (c *controller) reconcileMigration(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	m := &kubevirtv1.VirtualMachineInstanceMigration{}
	if err := c.client.Get(ctx, request.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			return c.migrationGone(ctx, request.NamespacedName)
		}
		return reconcile.Result{}, err
	}
	if roleOf(m) == 0 {
		return reconcile.Result{}, nil
	}
	if err := c.publishOnMigration(ctx, m); err != nil {
		return reconcile.Result{}, err
	}
	if m.DeletionTimestamp != nil {
		return c.cancelPeer(ctx, request.NamespacedName)
	}
	vmi, err := c.vmiOf(ctx, m)
	if err != nil {
		return reconcile.Result{}, err
	}
	if vmi == nil || !belongsTo(vmi, m) {
		if !m.IsFinal() {
			// Without its VMI (or with a VMI busy with another migration)
			// there is nothing to push yet; the VMI's arrival wakes this up.
			return reconcile.Result{}, nil
		}
		// It ended without its VMI (gone, or the VM's next instance or
		// migration has it): the peer hears the outcome from the
		// migration itself rather than waiting for it to its deadline.
		vmi = endedMigrationsVMI(m)
	}
	return c.follow(ctx, m, vmi)
}

// endedPushWindow is how long after its end a migration's outcome is still
// pushed by a leader that did not follow it: longer than any peer waits.
const endedPushWindow = 5 * time.Minute

// endedWithin tells whether m entered its final phase less than window ago.
func endedWithin(m *kubevirtv1.VirtualMachineInstanceMigration, now time.Time, window time.Duration) bool {
	for _, stamp := range m.Status.PhaseTransitionTimestamps {
		if stamp.Phase == m.Status.Phase && stamp.PhaseTransitionTimestamp.Time.After(now.Add(-window)) {
			return true
		}
	}
	return false
}

// endedMigrationsVMI stands for the VMI of a migration that ended without
// it: what the migration's status mirrored of it.
func endedMigrationsVMI(m *kubevirtv1.VirtualMachineInstanceMigration) *kubevirtv1.VirtualMachineInstance {
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Spec.VMIName, UID: ownHalfVMIUID(m)}}
	vmi.Status.MigrationState = m.Status.MigrationState.DeepCopy()
	if vmi.Status.MigrationState == nil {
		vmi.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{}
	}
	vmi.Status.MigrationState.MigrationUID = m.UID
	return vmi
}

// belongsTo reports whether the VMI's migration state is m's, or not
// claimed by any migration yet.
func belongsTo(vmi *kubevirtv1.VirtualMachineInstance, m *kubevirtv1.VirtualMachineInstanceMigration) bool {
	state := vmi.Status.MigrationState
	return state == nil || state.MigrationUID == "" || state.MigrationUID == m.UID
}

func (c *controller) vmiOf(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) (*kubevirtv1.VirtualMachineInstance, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	err := c.client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.VMIName}, vmi)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return vmi, err
}

// follow does what planPush decides for a migration whose VMI exists.
func (c *controller) follow(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) (reconcile.Result, error) {
	key := client.ObjectKeyFromObject(m)
	if _, following := c.contacts.lookup(key); m.IsFinal() && !following && !endedWithin(m, c.now(), endedPushWindow) {
		// A migration that ended well before this leader came: its peer
		// was told by then, or gave up at its own deadline. One that ended
		// lately may have ended while no leader ran (the fault suite's
		// target sync controller killed mid-transfer: the source never
		// heard that the guest had arrived): its outcome is pushed once.
		return reconcile.Result{}, nil
	}
	status, err := c.ownStatus(ctx, m, vmi)
	if err != nil {
		return reconcile.Result{}, err
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		return reconcile.Result{}, err
	}
	r, now := roleOf(m), c.now()
	in := c.pushInputOf(m, status, statusJSON, now)
	ct := c.contacts.track(key, r, migrationIDOf(m), now, func(ct *contact) {
		ct.peerAddress = in.peerAddress
		ct.peerMigrationUID = firstSet(peerMigrationUIDOf(r, status), ct.peerMigrationUID)
		if in.over && ct.overSince.IsZero() {
			ct.overSince = now
		}
	})
	plan := planPush(in, &ct, c.timing)
	return c.carryOut(ctx, m, vmi, in, plan, statusJSON)
}

// ownStatus is the VMI's status with its own half filled in
// (pushedStatus), which is written to the VMI too while the migration
// runs.
func (c *controller) ownStatus(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) (*kubevirtv1.VirtualMachineInstanceStatus, error) {
	status := pushedStatus(m, vmi, c.address)
	if m.IsFinal() || anotherMigrationsVMI(m, vmi) != "" || !statusChanged(&vmi.Status, status) {
		// Nothing is written into a VMI that is not the migration's.
		return status, nil
	}
	updated := vmi.DeepCopy()
	updated.Status = *status
	return status, c.patchVMIStatus(ctx, vmi, updated)
}

func (c *controller) pushInputOf(m *kubevirtv1.VirtualMachineInstanceMigration, status *kubevirtv1.VirtualMachineInstanceStatus, statusJSON []byte, now time.Time) pushInput {
	state := status.MigrationState
	digest := sha256.Sum256(statusJSON)
	return pushInput{
		now:             now,
		over:            m.IsFinal() || isOver(state),
		peerAddress:     peerAddressOf(m, status),
		digest:          hex.EncodeToString(digest[:]),
		abortRequested:  state != nil && state.AbortRequested,
		cancelledByPeer: state != nil && state.FailureReason == CancelledByPeerReason,
		ownAddress:      c.address,
	}
}

func (c *controller) carryOut(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, in pushInput, plan pushPlan, statusJSON []byte) (reconcile.Result, error) {
	key := client.ObjectKeyFromObject(m)
	if plan.failReason != "" {
		return reconcile.Result{}, c.failSilentPeer(ctx, m, vmi, plan.failReason)
	}
	var callErr error
	if plan.sendCancel {
		callErr = c.sendCancel(ctx, key, plan.callTimeout)
	}
	if plan.push {
		err := c.callPeer(ctx, key, plan.callTimeout, func(ctx context.Context) error {
			return c.peers.pushStatus(ctx, roleOf(m), in.peerAddress, migrationIDOf(m), statusJSON)
		}, func(ct *contact) {
			ct.lastPushedDigest, ct.lastPushAt = in.digest, in.now
		})
		callErr = errors.Join(callErr, err)
	}
	if callErr != nil {
		return reconcile.Result{RequeueAfter: c.retryDelay(key, in.over)}, nil
	}
	if m.IsFinal() && !plan.push && !plan.sendCancel {
		c.contacts.forget(key) // nothing left to tell the peer
	}
	return reconcile.Result{RequeueAfter: plan.recheckAfter}, nil
}

// callPeer makes one call with its timeout and records how it went; a
// failure is logged when it first happens or its cause changes, and the
// recovery too.
func (c *controller) callPeer(ctx context.Context, key types.NamespacedName, timeout time.Duration, call func(context.Context) error, onSuccess func(*contact)) error {
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := call(callCtx)
	c.contacts.update(key, func(ct *contact) {
		switch {
		case err != nil && err.Error() != ct.lastError:
			c.logger.Info("cannot reach the peer; retrying", "migration", key.String(), "side", ct.role.String(), "migrationID", ct.migrationID, "error", err.Error())
		case err == nil && ct.failures > 0:
			c.logger.Info("reached the peer again", "migration", key.String(), "side", ct.role.String(), "migrationID", ct.migrationID, "peer", ct.peerAddress)
		}
		if err != nil {
			ct.failed(err)
			return
		}
		ct.succeeded(c.now())
		onSuccess(ct)
	})
	return err
}

// retryDelay is the backoff after a failed call, within the deadline.
func (c *controller) retryDelay(key types.NamespacedName, over bool) time.Duration {
	ct, _ := c.contacts.lookup(key)
	since := ct.silentSince()
	if over {
		since = ct.overSince
	}
	return retryAfter(ct.failures, c.timing.deadline-c.now().Sub(since))
}

// failSilentPeer fails the migration in the VMI's status, which the other
// controllers act on, and says so in an event on the VMIM.
func (c *controller) failSilentPeer(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, reason string) error {
	updated := vmi.DeepCopy()
	markFailed(ensureMigrationState(&updated.Status), reason)
	if err := c.patchVMIStatus(ctx, vmi, updated); err != nil {
		return err
	}
	c.logger.Info("migration failed", "migration", client.ObjectKeyFromObject(m).String(), "reason", reason)
	c.recorder.Eventf(m, vmi, corev1.EventTypeWarning, "SynchronizationPeerSilent", "Synchronize", "%s", reason)
	return nil
}

// migrationGone: a VMIM deleted before its migration was over cancels the
// peer's side (upstream: deleting either VMIM cancels both). Tries go on
// for a deadline's time.
func (c *controller) migrationGone(ctx context.Context, key types.NamespacedName) (reconcile.Result, error) {
	ct, following := c.contacts.lookup(key)
	if !following {
		return reconcile.Result{}, nil
	}
	if !ct.overSince.IsZero() || ct.peerAddress == "" || ct.cancelSent {
		c.contacts.forget(key)
		return reconcile.Result{}, nil
	}
	c.contacts.update(key, func(ct *contact) {
		if ct.goneSince.IsZero() {
			ct.goneSince = c.now()
		}
	})
	result, err := c.cancelPeer(ctx, key)
	if ct, _ = c.contacts.lookup(key); ct.cancelSent || c.now().Sub(ct.goneSince) >= c.timing.deadline {
		if !ct.cancelSent {
			c.logger.Info("migration deleted; gave up telling the peer", "migration", key.String(), "peer", ct.peerAddress, "after", c.timing.deadline.String(), "lastError", ct.lastError)
		}
		c.contacts.forget(key)
		return reconcile.Result{}, nil
	}
	return result, err
}

// cancelPeer sends CancelMigration once, for a migration deleted while it
// was not over.
func (c *controller) cancelPeer(ctx context.Context, key types.NamespacedName) (reconcile.Result, error) {
	ct, following := c.contacts.lookup(key)
	if !following || ct.cancelSent || ct.peerAddress == "" || !ct.overSince.IsZero() {
		return reconcile.Result{}, nil
	}
	if err := c.sendCancel(ctx, key, c.timing.callTimeout); err != nil {
		return reconcile.Result{RequeueAfter: retryAfter(ct.failures+1, c.timing.deadline)}, nil
	}
	return reconcile.Result{}, nil
}

// sendCancel asks the peer to abort its side. The peer's VMIM is named by
// its UID as its pushes told; before any push, by the migration ID, which
// cclm's receiver accepts too.
func (c *controller) sendCancel(ctx context.Context, key types.NamespacedName, timeout time.Duration) error {
	ct, _ := c.contacts.lookup(key)
	uid := firstSet(ct.peerMigrationUID, ct.migrationID)
	err := c.callPeer(ctx, key, timeout, func(ctx context.Context) error {
		return c.peers.cancel(ctx, ct.peerAddress, uid)
	}, func(ct *contact) { ct.cancelSent = true })
	if err == nil {
		c.logger.Info("the peer cancelled its side", "migration", key.String(), "side", ct.role.String(), "migrationID", ct.migrationID, "peer", ct.peerAddress)
	}
	return err
}

// patchVMIStatus writes the difference between vmi and updated as a merge
// patch of the status, so that fields others write meanwhile are kept.
func (c *controller) patchVMIStatus(ctx context.Context, vmi, updated *kubevirtv1.VirtualMachineInstance) error {
	if err := c.client.Status().Patch(ctx, updated, client.MergeFrom(vmi)); err != nil {
		return fmt.Errorf("patch the status of VMI %s: %w", client.ObjectKeyFromObject(vmi), err)
	}
	return nil
}
