package toolkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/trust"
	"github.com/cclm-io/cclm/internal/vmrefs"
)

// migrationReconciler is the driver around StartMigration, StepVM and
// AggregateMigration: it reads (directly, not from a cache: a restarted
// controller must see what exists), calls them, writes the Migration's
// status (conditional on the version read), then does the VMs' actions,
// then mirrors the status into the Plan.
type migrationReconciler struct {
	client   client.Client // writes, and the watches' lookups
	reader   client.Reader // reads of the target
	recorder recorder.EventRecorder
	opts     Options
	now      func() time.Time
	// newSource makes a client of a source cluster (tests replace it).
	newSource func(*rest.Config) (client.Client, error)
	// host reaches this cluster: the source of a plan whose source
	// Provider is the host.
	host *rest.Config

	mu         sync.Mutex
	sources    map[string]client.Client // by sourceKey
	lastErrors map[string]*ActionError  // by migration UID/VM key
}

func newMigrationReconciler(mgr ctrl.Manager, opts Options) *migrationReconciler {
	return &migrationReconciler{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(),
		recorder: mgr.GetEventRecorder(eventSource),
		opts:     opts, now: time.Now, host: mgr.GetConfig(),
		newSource: func(config *rest.Config) (client.Client, error) {
			return client.New(config, client.Options{Scheme: scheme.Scheme})
		},
		sources:    map[string]client.Client{},
		lastErrors: map[string]*ActionError{},
	}
}

// staleRetry: after a write lost to a newer version, look again this soon.
const staleRetry = time.Second

// observeTimeout bounds the reads of one reconcile.
const observeTimeout = 30 * time.Second

func (r *migrationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &forkliftv1beta1.Migration{}
	if err := r.reader.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	plan, err := getOrNil[forkliftv1beta1.Plan](ctx, r.reader, m.Spec.Plan, m.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if MigrationEnded(m) {
		return ctrl.Result{}, r.mirror(ctx, plan, m)
	}
	if m.Status.Started == nil {
		return r.start(ctx, m, plan)
	}
	if plan == nil {
		// The plan went away mid-flight: its maps, providers and target
		// namespace went with it, so nothing can go on (nor be cleaned
		// up) until it is back.
		ctrl.LoggerFrom(ctx).Info("the Migration's Plan does not exist; waiting for it", "plan", refName(m.Spec.Plan, m.Namespace))
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	return r.advance(ctx, m, plan)
}

func (r *migrationReconciler) start(ctx context.Context, m *forkliftv1beta1.Migration, plan *forkliftv1beta1.Plan) (ctrl.Result, error) {
	obs := StartObserved{Migration: m, Plan: plan, Now: r.now().Truncate(time.Second), Timeouts: r.opts.Timeouts}
	if plan != nil {
		others, err := migrationsOf(ctx, r.reader, plan)
		if err != nil {
			return ctrl.Result{}, err
		}
		obs.Others = others
	}
	status, requeue := StartMigration(obs)
	if err := r.writeStatus(ctx, m, status, true); err != nil {
		return r.retry(err)
	}
	if m.Status.Started != nil || MigrationEnded(m) {
		if err := r.mirror(ctx, plan, m); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r *migrationReconciler) retry(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ctrl.Result{RequeueAfter: staleRetry}, nil
	}
	return ctrl.Result{}, err
}

// writeStatus writes status into m (whose version was read) when it
// differs, or always when force (a guard: actions follow only a write
// that found m's version current).
func (r *migrationReconciler) writeStatus(ctx context.Context, m *forkliftv1beta1.Migration, status forkliftv1beta1.MigrationStatus, force bool) error {
	if !force && equality.Semantic.DeepEqual(m.Status, status) {
		return nil
	}
	m.Status = status
	m.Status.ObservedGeneration = m.Generation
	return r.client.Status().Update(ctx, m)
}

// inFlight is the toolkit's limit of VMs in flight (the ForkliftController's
// controller_max_vm_inflight, else Options.MaxInFlight) and how many are:
// started and not ended, in m and in every other running Migration.
func (r *migrationReconciler) inFlight(ctx context.Context, m *forkliftv1beta1.Migration) (limit, n int) {
	limit = r.opts.MaxInFlight
	if fc, err := toolkitOf(ctx, r.client, r.opts.Namespace); err == nil && fc != nil && fc.Spec.ControllerMaxVMInFlight != nil {
		limit = int(*fc.Spec.ControllerMaxVMInFlight)
	}
	n = vmsInFlight(m)
	var others forkliftv1beta1.MigrationList
	if err := r.client.List(ctx, &others); err == nil {
		for i := range others.Items {
			if other := &others.Items[i]; other.UID != m.UID && migrationRunning(other) {
				n += vmsInFlight(other)
			}
		}
	}
	return limit, n
}

// vmsInFlight counts m's VMs that started and have not ended.
func vmsInFlight(m *forkliftv1beta1.Migration) int {
	n := 0
	for _, vm := range m.Status.VMs {
		if vm.Started != nil && !IsFinal(vm) {
			n++
		}
	}
	return n
}

// waitingForSlot is what a VM that may not start yet shows.
func waitingForSlot(inFlight, limit int) string {
	return fmt.Sprintf("waiting: %d of %d VMs in flight (the ForkliftController's controller_max_vm_inflight)", inFlight, limit)
}

// advance steps every VM of a started Migration.
func (r *migrationReconciler) advance(ctx context.Context, m *forkliftv1beta1.Migration, plan *forkliftv1beta1.Plan) (ctrl.Result, error) {
	now := r.now().Truncate(time.Second)
	readCtx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	source, sourceErr := r.sourceClient(readCtx, plan)
	perGiB := r.completionTimeoutPerGiB(readCtx)
	var networkMap []forkliftv1beta1.NetworkPair
	var storageMap []forkliftv1beta1.StoragePair
	if nm, err := getOrNil[forkliftv1beta1.NetworkMap](readCtx, r.reader, plan.Spec.Map.Network, plan.Namespace); err == nil && nm != nil {
		networkMap = nm.Spec.Map
	}
	if sm, err := getOrNil[forkliftv1beta1.StorageMap](readCtx, r.reader, plan.Spec.Map.Storage, plan.Namespace); err == nil && sm != nil {
		storageMap = sm.Spec.Map
	}
	var trustView *TrustView
	if slices.ContainsFunc(m.Status.VMs, NeedsTrust) {
		trustView = r.observeTrust(readCtx, source, sourceErr, refName(plan.Spec.Provider.Source, plan.Namespace))
	}
	limit, inFlight := r.inFlight(readCtx, m)
	decisions := make([]VMDecision, len(m.Status.VMs))
	var wg sync.WaitGroup
	for i := range m.Status.VMs {
		status := m.Status.VMs[i]
		if IsFinal(status) {
			decisions[i] = VMDecision{Status: status}
			continue
		}
		mayStart := status.Started != nil || inFlight < limit
		if status.Started == nil && mayStart {
			inFlight++
		}
		obs := VMObserved{
			Now: now, Status: status, MayStart: mayStart, Waiting: waitingForSlot(inFlight, limit),
			Cancel:  m.Spec.Canceled(status.Ref),
			PlanUID: plan.UID, MigrationUID: m.UID, TargetNamespace: plan.Spec.TargetNamespace,
			NetworkMap: networkMap, StorageMap: storageMap,
			TargetLabels: plan.Spec.TargetLabels, TargetNodeSelector: plan.Spec.TargetNodeSelector,
			CompletionTimeoutPerGiB: perGiB, Timeouts: r.opts.Timeouts,
			Trust: trustView, VirtNamespace: r.opts.VirtNamespace,
			Inventory: NeedsInventory(status), Volumes: NeedsVolumes(status),
			LastError: r.lastError(m.UID, status.Ref),
		}
		wg.Go(func() {
			r.observeSource(readCtx, &obs, source, sourceErr, refName(plan.Spec.Provider.Source, plan.Namespace))
			r.observeTarget(readCtx, &obs)
			decisions[i] = StepVM(obs)
		})
	}
	wg.Wait()
	status := *m.Status.DeepCopy()
	var actions []Action
	var actionVMs []forkliftv1beta1.VMStatus
	requeue := time.Duration(0)
	for i, d := range decisions {
		status.VMs[i] = d.Status
		for _, a := range d.Actions {
			actions = append(actions, a)
			actionVMs = append(actionVMs, d.Status)
		}
		if d.RequeueAfter > 0 && (requeue == 0 || d.RequeueAfter < requeue) {
			requeue = d.RequeueAfter
		}
	}
	status = AggregateMigration(status, now)
	if err := r.writeStatus(ctx, m, status, len(actions) > 0); err != nil {
		return r.retry(err)
	}
	for _, d := range decisions {
		for _, e := range d.Events {
			r.recorder.Eventf(m, nil, e.Type, e.Reason, "Migrate", "%s", e.Message)
		}
	}
	for i, a := range actions {
		r.do(ctx, m.UID, actionVMs[i], a, source)
	}
	if err := r.mirror(ctx, plan, m); err != nil {
		return ctrl.Result{}, err
	}
	if requeue == 0 && !MigrationEnded(m) {
		requeue = 5 * time.Second
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// do performs one action: a create that finds the object there, or a
// delete that finds it gone, is done; an error is remembered for the VM's
// next decision.
func (r *migrationReconciler) do(ctx context.Context, migrationUID types.UID, vm forkliftv1beta1.VMStatus, a Action, source client.Client) {
	c := client.Client(r.client)
	if a.Side == SideSource {
		c = source
	}
	var err error
	if c == nil {
		err = fmt.Errorf("no client for the %s", a.Side)
	} else {
		switch a.Op {
		case OpCreate:
			err = c.Create(ctx, a.Object)
			if apierrors.IsAlreadyExists(err) {
				err = nil
			}
		case OpDelete:
			err = c.Delete(ctx, a.Object, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if apierrors.IsNotFound(err) {
				err = nil
			}
		case OpUpdate:
			err = c.Update(ctx, a.Object)
		case OpImportCA:
			_, err = trust.ImportPeerCA(ctx, c, a.Object.GetNamespace(), a.Object.(*corev1.ConfigMap).Data[trust.BundleKey])
		}
	}
	key := vmKey(migrationUID, vm.Ref)
	task := Tasks[taskOf(vm)]
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.lastErrors, key)
		ctrl.LoggerFrom(ctx).Info("done", "vm", vmRefName(vm.Ref), "task", task, "action", a.String())
		return
	}
	ctrl.LoggerFrom(ctx).Info("action failed", "vm", vmRefName(vm.Ref), "task", task, "action", a.String(), "error", err.Error())
	message := fmt.Sprintf("%s: %v", a, err)
	// A refused import is for the user to fix, not for retries to wait out.
	refusedImport := a.Op == OpImportCA && apierrors.IsForbidden(err)
	if refusedImport {
		message += fmt.Sprintf("; the %s cluster's account may not write ConfigMap %s: allow it create and update on configmaps in namespace %s (the guide's ClusterRole live-migration-role does, for the source's token)",
			a.Side, trust.ExternalCAConfigMap, a.Object.GetNamespace())
	}
	r.lastErrors[key] = &ActionError{
		Step: task, Message: message,
		Permanent: apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || refusedImport,
	}
}

func vmKey(migrationUID types.UID, ref forkliftv1beta1.Ref) string {
	return string(migrationUID) + "/" + ref.Namespace + "/" + ref.Name + "/" + ref.ID
}

func (r *migrationReconciler) lastError(migrationUID types.UID, ref forkliftv1beta1.Ref) *ActionError {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.lastErrors[vmKey(migrationUID, ref)]; e != nil {
		copied := *e
		return &copied
	}
	return nil
}

// mirror copies the Migration's VMs into the Plan's status.migration.
func (r *migrationReconciler) mirror(ctx context.Context, plan *forkliftv1beta1.Plan, m *forkliftv1beta1.Migration) error {
	if plan == nil || m.Status.Started == nil {
		return nil
	}
	want := forkliftv1beta1.PlanMigrationStatus{Timed: *m.Status.Timed.DeepCopy(), VMs: m.Status.DeepCopy().VMs}
	if equality.Semantic.DeepEqual(plan.Status.Migration, want) {
		return nil
	}
	updated := plan.DeepCopy()
	updated.Status.Migration = want
	return client.IgnoreNotFound(r.client.Status().Patch(ctx, updated, client.MergeFrom(plan)))
}

// sourceClient is a client of the plan's source cluster, made with its
// Provider's token and kept while the Provider's url and Secret stay the
// same; the error says why there is none.
func (r *migrationReconciler) sourceClient(ctx context.Context, plan *forkliftv1beta1.Plan) (client.Client, string) {
	provider, err := getOrNil[forkliftv1beta1.Provider](ctx, r.reader, plan.Spec.Provider.Source, plan.Namespace)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("read the source Provider: %v", err)
	case provider == nil:
		return nil, fmt.Sprintf("the source Provider %s does not exist", refName(plan.Spec.Provider.Source, plan.Namespace))
	}
	config, err := MigrationSourceConfig(ctx, r.reader, provider, r.host)
	if err != nil {
		return nil, err.Error()
	}
	key := sourceKey(config)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.sources[key]; c != nil {
		return c, ""
	}
	c, err := r.newSource(config)
	if err != nil {
		return nil, fmt.Sprintf("client of %s: %v", config.Host, err)
	}
	if len(r.sources) > maxRemembered {
		r.sources = map[string]client.Client{}
	}
	r.sources[key] = c
	return c, ""
}

// sourceKey identifies a source config without holding its token.
func sourceKey(config *rest.Config) string {
	sum := sha256.Sum256([]byte(config.Host + "\x00" + config.BearerToken + "\x00" + string(config.CAData) + fmt.Sprint(config.Insecure)))
	return hex.EncodeToString(sum[:])
}

// completionTimeoutPerGiB is the target KubeVirt CR's (0 if unreadable:
// the default then).
func (r *migrationReconciler) completionTimeoutPerGiB(ctx context.Context) int64 {
	var list kubevirtv1.KubeVirtList
	if err := r.reader.List(ctx, &list, client.InNamespace(r.opts.VirtNamespace)); err != nil || len(list.Items) == 0 {
		return 0
	}
	config := list.Items[0].EffectiveMigrationConfiguration()
	if config.CompletionTimeoutPerGiB == nil {
		return 0
	}
	return *config.CompletionTimeoutPerGiB
}

// ---- reading ----

// get reads key into obj: found, absent (false, nil) or an error.
func get(ctx context.Context, c client.Reader, key client.ObjectKey, obj client.Object) (bool, error) {
	err := c.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (r *migrationReconciler) observeSource(ctx context.Context, obs *VMObserved, c client.Client, sourceErr, provider string) {
	if sourceErr != "" {
		obs.Source.Err = sourceErr
		return
	}
	view, err := readSource(ctx, c, obs)
	if err != nil {
		obs.Source = SourceView{ClusterView: ClusterView{Err: sourceReadError(err, provider)}}
		return
	}
	obs.Source = view
	if obs.Inventory {
		obs.References = ReferencedResources(view.VM)
	}
}

// sourceReadError says what a failed read of the source means: a token
// the source refuses (revoked, expired) or may not read with is named as
// the Provider's, with its fix, since that is what the user must act on;
// "Unauthorized" alone says nothing of which credentials.
func sourceReadError(err error, provider string) string {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Sprintf("%v: the source cluster refused the token of Provider %s (401 Unauthorized): it was revoked or expired; put a valid token in the Provider's Secret (cclm connect does)", err, provider)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("%v: the token of Provider %s may not do this on the source (403 Forbidden): bind its account to the ClusterRole live-migration-role (cclm connect does)", err, provider)
	}
	return err.Error()
}

// readSource reads the VM (by name, or by UID when the plan gives only
// its id), its VMI, the sending VMIM, and with the inventory its
// DataVolumes, PVCs and referenced Secrets and ConfigMaps.
func readSource(ctx context.Context, c client.Reader, obs *VMObserved) (SourceView, error) {
	view := SourceView{}
	ref := obs.Status.Ref
	vm := &kubevirtv1.VirtualMachine{}
	switch {
	case ref.Name != "":
		found, err := get(ctx, c, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, vm)
		if err != nil {
			return view, fmt.Errorf("read VM %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		if found {
			view.VM = vm
		}
	case ref.ID != "":
		var list kubevirtv1.VirtualMachineList
		if err := c.List(ctx, &list); err != nil {
			return view, fmt.Errorf("list VMs to find id %s: %w", ref.ID, err)
		}
		for i := range list.Items {
			if string(list.Items[i].UID) == ref.ID {
				view.VM = &list.Items[i]
			}
		}
	}
	if view.VM == nil {
		return view, nil
	}
	key := client.ObjectKeyFromObject(view.VM)
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if found, err := get(ctx, c, key, vmi); err != nil {
		return view, fmt.Errorf("read VMI %s: %w", key, err)
	} else if found {
		view.VMI = vmi
	}
	if obs.Status.ID != "" {
		vmim := &kubevirtv1.VirtualMachineInstanceMigration{}
		name := VMIMName(view.VM.Name, obs.MigrationUID)
		if found, err := get(ctx, c, client.ObjectKey{Namespace: view.VM.Namespace, Name: name}, vmim); err != nil {
			return view, fmt.Errorf("read VMIM %s/%s: %w", view.VM.Namespace, name, err)
		} else if found {
			view.VMIM = vmim
		}
	}
	if !obs.Inventory {
		return view, nil
	}
	var err error
	if view.Resources, err = readResources(ctx, c, view.VM.Namespace, ReferencedResources(view.VM)); err != nil || !obs.Volumes {
		return view, err
	}
	view.DataVolumes, view.PVCs = map[string]*cdiv1beta1.DataVolume{}, map[string]*corev1.PersistentVolumeClaim{}
	for _, name := range volumeNames(view.VM) {
		if err := readVolume(ctx, c, view.VM.Namespace, name, view.DataVolumes, view.PVCs); err != nil {
			return view, err
		}
	}
	return view, nil
}

func volumeNames(vm *kubevirtv1.VirtualMachine) []string {
	if vm == nil || vm.Spec.Template == nil {
		return nil
	}
	var names []string
	for _, v := range vm.Spec.Template.Spec.Volumes {
		switch {
		case v.DataVolume != nil:
			names = append(names, v.DataVolume.Name)
		case v.PersistentVolumeClaim != nil:
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		}
	}
	return names
}

func readVolume(ctx context.Context, c client.Reader, namespace, name string, dataVolumes map[string]*cdiv1beta1.DataVolume, pvcs map[string]*corev1.PersistentVolumeClaim) error {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	dv := &cdiv1beta1.DataVolume{}
	if found, err := get(ctx, c, key, dv); err != nil {
		return fmt.Errorf("read DataVolume %s: %w", key, err)
	} else if found {
		dataVolumes[name] = dv
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if found, err := get(ctx, c, key, pvc); err != nil {
		return fmt.Errorf("read PVC %s: %w", key, err)
	} else if found {
		pvcs[name] = pvc
	}
	return nil
}

// readResources reads the referenced resources that exist, the
// namespaced ones in namespace; read by name only (the toolkit may not
// list Secrets).
func readResources(ctx context.Context, c client.Reader, namespace string, refs []ResourceRef) (map[ResourceRef]client.Object, error) {
	found := map[ResourceRef]client.Object{}
	for _, ref := range refs {
		obj, err := vmrefs.Get(ctx, c, ref, namespace)
		if err != nil {
			return found, fmt.Errorf("read %s: %w", ref, err)
		}
		if obj != nil {
			found[ref] = obj
		}
	}
	return found, nil
}

// observeTrust reads each cluster's migration CA and the CAs it trusts,
// the source's with the Provider's token.
func (r *migrationReconciler) observeTrust(ctx context.Context, source client.Client, sourceErr, provider string) *TrustView {
	view := &TrustView{Target: r.readTrust(ctx, r.reader)}
	if sourceErr != "" {
		view.Source.Err = sourceErr
		return view
	}
	view.Source = r.readTrust(ctx, source)
	if view.Source.Err != "" {
		view.Source.Err = sourceReadError(errors.New(view.Source.Err), provider)
	}
	return view
}

// readTrust reads one cluster's migration CA and the CAs it trusts.
func (r *migrationReconciler) readTrust(ctx context.Context, c client.Reader) ClusterTrust {
	bundles, err := trust.ReadBundles(ctx, c, r.opts.VirtNamespace)
	if err != nil {
		return ClusterTrust{Err: err.Error()}
	}
	return ClusterTrust{CA: bundles.CA, External: bundles.External}
}

func (r *migrationReconciler) observeTarget(ctx context.Context, obs *VMObserved) {
	view, err := readTarget(ctx, r.reader, obs)
	if err != nil {
		obs.Target = TargetView{ClusterView: ClusterView{Err: err.Error()}}
		return
	}
	obs.Target = view
}

// readTarget reads the target namespace, the receiving VM, VMI and VMIM,
// and with the inventory the volumes and resources of the VM's names, and
// the volumes labelled for this VM of this migration.
func readTarget(ctx context.Context, c client.Reader, obs *VMObserved) (TargetView, error) {
	view := TargetView{}
	namespace := obs.TargetNamespace
	ns := &corev1.Namespace{}
	if found, err := get(ctx, c, client.ObjectKey{Name: namespace}, ns); err != nil {
		return view, fmt.Errorf("read namespace %s: %w", namespace, err)
	} else if found {
		view.Namespace = ns
	}
	if name := obs.Status.Name; name != "" && obs.Status.ID != "" {
		key := client.ObjectKey{Namespace: namespace, Name: name}
		vm := &kubevirtv1.VirtualMachine{}
		if found, err := get(ctx, c, key, vm); err != nil {
			return view, fmt.Errorf("read VM %s: %w", key, err)
		} else if found {
			view.VM = vm
		}
		vmi := &kubevirtv1.VirtualMachineInstance{}
		if found, err := get(ctx, c, key, vmi); err != nil {
			return view, fmt.Errorf("read VMI %s: %w", key, err)
		} else if found {
			view.VMI = vmi
		}
		vmim := &kubevirtv1.VirtualMachineInstanceMigration{}
		vmimKey := client.ObjectKey{Namespace: namespace, Name: VMIMName(name, obs.MigrationUID)}
		if found, err := get(ctx, c, vmimKey, vmim); err != nil {
			return view, fmt.Errorf("read VMIM %s: %w", vmimKey, err)
		} else if found {
			view.VMIM = vmim
		}
	}
	if !obs.Inventory || view.Namespace == nil {
		return view, nil
	}
	var err error
	if view.Resources, err = readResources(ctx, c, namespace, obs.References); err != nil || !obs.Volumes {
		return view, err
	}
	view.DataVolumes, view.PVCs = map[string]*cdiv1beta1.DataVolume{}, map[string]*corev1.PersistentVolumeClaim{}
	for _, name := range volumeNames(obs.Source.VM) {
		if err := readVolume(ctx, c, namespace, name, view.DataVolumes, view.PVCs); err != nil {
			return view, err
		}
	}
	if obs.Status.ID == "" {
		return view, nil
	}
	// Volumes made for this VM whose names the source no longer gives
	// (Cleanup after the source VM changed): by label. Secrets and
	// ConfigMaps are only ever read by name, the toolkit may not list
	// them.
	selector := client.MatchingLabels{LabelMigration: string(obs.MigrationUID), LabelVMID: obs.Status.ID}
	var dvs cdiv1beta1.DataVolumeList
	var pvcs corev1.PersistentVolumeClaimList
	for _, list := range []client.ObjectList{&dvs, &pvcs} {
		if err := c.List(ctx, list, client.InNamespace(namespace), selector); err != nil {
			return view, fmt.Errorf("list what this migration made in %s: %w", namespace, err)
		}
	}
	for i := range dvs.Items {
		view.DataVolumes[dvs.Items[i].Name] = &dvs.Items[i]
	}
	for i := range pvcs.Items {
		view.PVCs[pvcs.Items[i].Name] = &pvcs.Items[i]
	}
	return view, nil
}

// ---- watches ----

// migrationsOfPlan maps a Plan change to its Migrations that have not
// started (they wait for it to be Ready).
func (r *migrationReconciler) migrationsOfPlan(ctx context.Context, obj client.Object) []reconcile.Request {
	plan, ok := obj.(*forkliftv1beta1.Plan)
	if !ok {
		return nil
	}
	migrations, err := migrationsOf(ctx, r.client, plan)
	if err != nil {
		return nil
	}
	var requests []reconcile.Request
	for i := range migrations {
		if migrations[i].Status.Started == nil {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&migrations[i])})
		}
	}
	return requests
}

// migrationOfObject maps a change of an object the toolkit made to its
// Migration, by the migration label.
func (r *migrationReconciler) migrationOfObject(ctx context.Context, obj client.Object) []reconcile.Request {
	uid := obj.GetLabels()[LabelMigration]
	if uid == "" {
		return nil
	}
	var list forkliftv1beta1.MigrationList
	if err := r.client.List(ctx, &list); err != nil {
		return nil
	}
	for i := range list.Items {
		if string(list.Items[i].UID) == uid {
			return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}}
		}
	}
	return nil
}
