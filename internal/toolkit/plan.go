package toolkit

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
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

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/preflight"
)

// Plan condition types of the toolkit's own checks (the preflight's use
// the check IDs, see preflight.Run).
const (
	ConditionToolkitEnabled              = preflight.ToolkitEnabled
	ConditionSourceProviderNotValid      = "SourceProviderNotValid"
	ConditionDestinationProviderNotValid = "DestinationProviderNotValid"
	ConditionNetworkMapNotValid          = "NetworkMapNotValid"
	ConditionStorageMapNotValid          = "StorageMapNotValid"
	ConditionUnsupportedType             = "UnsupportedType"
	// ConditionHooksNotSupported: a VM of the plan names hooks, which run
	// as Jobs; cclm does not run them and will not migrate without them.
	ConditionHooksNotSupported = "HooksNotSupported"
	// ConditionVMFieldNotSupported: a VM of the plan sets a field of
	// Forklift's that a live migration by cclm cannot honour.
	ConditionVMFieldNotSupported = "VMFieldNotSupported"
	// ConditionPlanFieldNotSupported: the plan sets a field of Forklift's
	// to something a live migration by cclm cannot do.
	ConditionPlanFieldNotSupported = "PlanFieldNotSupported"

	// ReasonPreflightFailed marks the conditions made of failed preflight
	// checks.
	ReasonPreflightFailed = "PreflightFailed"
)

// PlanObserved is everything PlanConditions decides on.
type PlanObserved struct {
	Plan *forkliftv1beta1.Plan
	// Toolkit is the ForkliftController of the toolkit's namespace, nil if
	// there is none.
	Toolkit          *forkliftv1beta1.ForkliftController
	ToolkitNamespace string
	// Source and Destination are the plan's Providers, nil if absent.
	Source, Destination *forkliftv1beta1.Provider
	// NetworkMap and StorageMap are the plan's maps, nil if absent.
	NetworkMap *forkliftv1beta1.NetworkMap
	StorageMap *forkliftv1beta1.StorageMap
	// Migrations are the plan's Migrations.
	Migrations []forkliftv1beta1.Migration
	// Report is the preflight's report when it ran for this decision; nil
	// keeps the preflight conditions the plan has.
	Report *preflight.Report
	Now    time.Time
}

// Blockers are the conditions that keep the preflight from running: the
// toolkit's flag, the providers and the maps. Each is Critical.
func Blockers(obs PlanObserved) []forkliftv1beta1.Condition {
	p := obs.Plan
	var out []forkliftv1beta1.Condition
	add := func(condType, reason, message string) {
		out = append(out, critical(condType, reason, message, obs.Now))
	}
	if p.Spec.Type != forkliftv1beta1.MigrationLive {
		add(ConditionUnsupportedType, "NotLive", fmt.Sprintf("spec.type is %q: the toolkit runs only live plans; set spec.type: live", p.Spec.Type))
	}
	switch fc := obs.Toolkit; {
	case fc == nil:
		add(ConditionToolkitEnabled, "NoForkliftController", fmt.Sprintf(
			"no ForkliftController in namespace %s: live plans need one with spec.feature_ocp_live_migration: \"true\"; create ForkliftController %s there with it",
			obs.ToolkitNamespace, ForkliftControllerName))
	case !fc.LiveMigrationEnabled():
		add(ConditionToolkitEnabled, "LiveMigrationDisabled", fmt.Sprintf(
			"ForkliftController %s/%s has feature_ocp_live_migration %q: live plans need \"true\"; kubectl patch forkliftcontroller %s -n %s --type=merge -p '{\"spec\":{\"feature_ocp_live_migration\":\"true\"}}'",
			fc.Namespace, fc.Name, fc.Spec.FeatureOCPLiveMigration, fc.Name, fc.Namespace))
	}
	source, destination := p.Spec.Provider.Source, p.Spec.Provider.Destination
	switch s := obs.Source; {
	case s == nil:
		add(ConditionSourceProviderNotValid, "NotFound", fmt.Sprintf("source Provider %s does not exist: create it (cclm connect does)", refName(source, p.Namespace)))
	case !providerReady(s):
		add(ConditionSourceProviderNotValid, "NotReady", fmt.Sprintf("source Provider %s/%s is not Ready (phase %s): %s", s.Namespace, s.Name, phaseOr(s.Status.Phase), readyMessage(s)))
	}
	switch d := obs.Destination; {
	case d == nil:
		add(ConditionDestinationProviderNotValid, "NotFound", fmt.Sprintf("destination Provider %s does not exist: create the host Provider (type openshift, no url; cclm connect does)", refName(destination, p.Namespace)))
	case !d.IsHost():
		add(ConditionDestinationProviderNotValid, "NotHost", fmt.Sprintf("destination Provider %s/%s is not the host cluster: the toolkit migrates into its own cluster; name the Provider with an empty url", d.Namespace, d.Name))
	}
	if fields := unsupportedPlanFields(p.Spec); len(fields) > 0 {
		add(ConditionPlanFieldNotSupported, "PlanFieldNotSupported", fmt.Sprintf(
			"spec sets %s, which a live migration by cclm cannot honour (it keeps each VM's names, devices and placement rules, and the guest runs on): remove them",
			strings.Join(fields, ", ")))
	}
	for i, vm := range p.Spec.VMs {
		where := fmt.Sprintf("spec.vms[%d] (%s)", i, vmRefName(vm.Ref))
		if len(vm.Hooks) > 0 {
			add(ConditionHooksNotSupported, "HooksNotSupported", fmt.Sprintf(
				"%s names hooks (%s): hooks run as Jobs, which cclm does not run; it refuses the plan rather than migrate without them: remove %s.hooks",
				where, hookList(vm.Hooks, p.Namespace), where))
		}
		if fields := unsupportedVMFields(vm); len(fields) > 0 {
			add(ConditionVMFieldNotSupported, "VMFieldNotSupported", fmt.Sprintf(
				"%s sets %s, which a live migration by cclm cannot honour (the VM keeps its name, volumes, networks and devices, and runs on): remove them",
				where, strings.Join(fields, ", ")))
		}
	}
	if obs.NetworkMap == nil {
		add(ConditionNetworkMapNotValid, "NotFound", fmt.Sprintf("NetworkMap %s does not exist: create it", refName(p.Spec.Map.Network, p.Namespace)))
	}
	if obs.StorageMap == nil {
		add(ConditionStorageMapNotValid, "NotFound", fmt.Sprintf("StorageMap %s does not exist: create it", refName(p.Spec.Map.Storage, p.Namespace)))
	}
	return out
}

// hookList names hooks as "namespace/name at step".
func hookList(hooks []forkliftv1beta1.HookRef, namespace string) string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = fmt.Sprintf("%s at %s", refName(h.Hook, namespace), h.Step)
	}
	return strings.Join(names, ", ")
}

// unsupportedVMFields are the fields of vm set to something a live
// migration by cclm does not do, by their names in the Plan.
func unsupportedVMFields(vm forkliftv1beta1.PlanVM) []string {
	var fields []string
	set := func(name string, isSet bool) {
		if isSet {
			fields = append(fields, name)
		}
	}
	set("luks", vm.LUKS != nil && vm.LUKS.Name != "")
	set("nbdeClevis", vm.NbdeClevis)
	set("rootDisk", vm.RootDisk != "")
	set("instanceType", vm.InstanceType != "")
	set("pvcNameTemplate", vm.PVCNameTemplate != "")
	set("volumeNameTemplate", vm.VolumeNameTemplate != "")
	set("networkNameTemplate", vm.NetworkNameTemplate != "")
	set("targetName", vm.TargetName != "" && vm.TargetName != vm.Name)
	set("targetPowerState: off", vm.TargetPowerState == forkliftv1beta1.TargetPowerStateOff)
	set("migrateSharedDisks: true", vm.MigrateSharedDisks != nil && *vm.MigrateSharedDisks)
	set("enableNestedVirtualization", vm.EnableNestedVirtualization != nil)
	return fields
}

// unsupportedPlanFields are the plan-level fields set to something a live
// migration by cclm does not do, by their names in the Plan. The fields of
// cold, warm and conversion migrations that have no effect on a live one
// from an OpenShift source (convertor placement, preserveStaticIPs,
// skipGuestConversion, ...) are accepted, as Forklift ignores them there.
func unsupportedPlanFields(spec forkliftv1beta1.PlanSpec) []string {
	var fields []string
	set := func(name string, isSet bool) {
		if isSet {
			fields = append(fields, name)
		}
	}
	set("targetAffinity", spec.TargetAffinity != nil)
	set("transferNetwork", spec.TransferNetwork != nil && spec.TransferNetwork.Name != "")
	set("diskBus", spec.DiskBus != "")
	set("pvcNameTemplate", spec.PVCNameTemplate != "")
	set("volumeNameTemplate", spec.VolumeNameTemplate != "")
	set("networkNameTemplate", spec.NetworkNameTemplate != "")
	set("targetPowerState: off", spec.TargetPowerState == forkliftv1beta1.TargetPowerStateOff)
	return fields
}

// Executing reports whether one of the plan's Migrations started and has
// not ended. (One not yet started waits for the plan's evaluation.)
func Executing(migrations []forkliftv1beta1.Migration) bool {
	for i := range migrations {
		if migrationRunning(&migrations[i]) {
			return true
		}
	}
	return false
}

// Done reports whether the plan's latest Migration succeeded and the plan
// was not changed since it was last evaluated: its VMs moved, so checking
// it again (its source VMs are now halted) would only say so; it is not
// checked periodically any more, as upstream stops validating a
// succeeded plan.
func Done(plan *forkliftv1beta1.Plan, migrations []forkliftv1beta1.Migration) bool {
	latest := latestMigration(migrations)
	if latest == nil || plan.Status.ObservedGeneration != plan.Generation {
		return false
	}
	c := forkliftv1beta1.FindCondition(latest.Status.Conditions, forkliftv1beta1.ConditionSucceeded)
	return c != nil && c.Status == forkliftv1beta1.ConditionTrue
}

// latestMigration is the most recently created of migrations, nil if none.
func latestMigration(migrations []forkliftv1beta1.Migration) *forkliftv1beta1.Migration {
	var latest *forkliftv1beta1.Migration
	for i := range migrations {
		m := &migrations[i]
		if latest == nil || latest.CreationTimestamp.Before(&m.CreationTimestamp) ||
			latest.CreationTimestamp.Equal(&m.CreationTimestamp) && latest.Name < m.Name {
			latest = m
		}
	}
	return latest
}

// PlanConditions is the plan's conditions: the blockers, one Critical
// condition per failed preflight check (Type = check ID, Message with the
// fix), Ready (True only when nothing Critical), and Executing /
// Succeeded / Failed / Canceled mirroring its latest Migration. Conditions
// whose status did not change keep their transition time.
func PlanConditions(obs PlanObserved) []forkliftv1beta1.Condition {
	conditions := Blockers(obs)
	if len(conditions) == 0 {
		if obs.Report != nil {
			conditions = append(conditions, preflightConditions(*obs.Report, obs.Now)...)
		} else {
			for _, c := range obs.Plan.Status.Conditions {
				if c.Reason == ReasonPreflightFailed {
					conditions = append(conditions, c)
				}
			}
		}
	}
	var blocking []string
	for _, c := range conditions {
		if c.Category == forkliftv1beta1.CategoryCritical && c.Status == forkliftv1beta1.ConditionTrue {
			blocking = append(blocking, c.Type)
		}
	}
	ready := forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionReady, Category: forkliftv1beta1.CategoryRequired, LastTransitionTime: metav1.NewTime(obs.Now)}
	switch {
	case len(blocking) > 0:
		ready.Status, ready.Reason = forkliftv1beta1.ConditionFalse, "NotReady"
		ready.Message = "The plan cannot run: " + strings.Join(blocking, ", ") + "."
	case obs.Report == nil && !hasReady(obs.Plan):
		ready.Status, ready.Reason, ready.Message = forkliftv1beta1.ConditionFalse, "NotEvaluated", "The plan is being checked."
	default:
		ready.Status, ready.Reason, ready.Message = forkliftv1beta1.ConditionTrue, "Ready", "The plan is ready."
	}
	conditions = append(conditions, ready)
	conditions = append(conditions, executionConditions(obs.Migrations, obs.Now)...)
	return keepTransitions(obs.Plan.Status.Conditions, conditions)
}

func hasReady(p *forkliftv1beta1.Plan) bool {
	c := forkliftv1beta1.FindCondition(p.Status.Conditions, forkliftv1beta1.ConditionReady)
	return c != nil && c.Reason != "NotEvaluated"
}

// preflightConditions is one condition per failed check ID: the failures
// of that ID (per side, per VM) in one message, their VMs or sides as
// items.
func preflightConditions(report preflight.Report, now time.Time) []forkliftv1beta1.Condition {
	var ids []string
	byID := map[string][]preflight.Check{}
	for _, c := range report.Failures() {
		if _, seen := byID[c.ID]; !seen {
			ids = append(ids, c.ID)
		}
		byID[c.ID] = append(byID[c.ID], c)
	}
	var out []forkliftv1beta1.Condition
	for _, id := range ids {
		var messages, items []string
		for _, c := range byID[id] {
			message := c.Message
			switch {
			case c.VM != "":
				items = append(items, c.VM)
			case c.Side != "":
				items = append(items, string(c.Side))
			}
			if c.Fix != "" {
				message += " Fix: " + c.Fix
			}
			messages = append(messages, message)
		}
		condition := critical(id, ReasonPreflightFailed, strings.Join(messages, " | "), now)
		condition.Items = items
		out = append(out, condition)
	}
	return out
}

// executionConditions mirror the plan's Migrations: Executing while one
// runs, else the latest ended one's outcome.
func executionConditions(migrations []forkliftv1beta1.Migration, now time.Time) []forkliftv1beta1.Condition {
	at := metav1.NewTime(now)
	if Executing(migrations) {
		return []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionExecuting, Status: forkliftv1beta1.ConditionTrue, Reason: "Running",
			Category: forkliftv1beta1.CategoryAdvisory, Message: "The plan is executing.", LastTransitionTime: at}}
	}
	latest := latestMigration(migrations)
	if latest == nil {
		return nil
	}
	if c := MigrationOutcome(latest); c != nil {
		return []forkliftv1beta1.Condition{{Type: c.Type, Status: forkliftv1beta1.ConditionTrue, Reason: c.Reason,
			Category: forkliftv1beta1.CategoryAdvisory, Message: fmt.Sprintf("Migration %s: %s", latest.Name, c.Message), LastTransitionTime: at}}
	}
	return nil
}

func critical(condType, reason, message string, now time.Time) forkliftv1beta1.Condition {
	return forkliftv1beta1.Condition{
		Type: condType, Status: forkliftv1beta1.ConditionTrue, Reason: reason,
		Category: forkliftv1beta1.CategoryCritical, Message: message, LastTransitionTime: metav1.NewTime(now),
	}
}

func phaseOr(phase string) string {
	if phase == "" {
		return "not yet checked"
	}
	return phase
}

func readyMessage(p *forkliftv1beta1.Provider) string {
	for _, c := range p.Status.Conditions {
		if c.Category == forkliftv1beta1.CategoryCritical && c.Status == forkliftv1beta1.ConditionTrue {
			return c.Message
		}
	}
	if c := forkliftv1beta1.FindCondition(p.Status.Conditions, forkliftv1beta1.ConditionReady); c != nil && c.Message != "" {
		return c.Message
	}
	return "the toolkit has not checked it yet"
}

// ---- the reconciler ----

// planReconciler keeps Plans' conditions: the blockers at once, and the
// preflight at most every PlanRecheck while no Migration runs (sooner
// when the plan, its providers, maps or the ForkliftController change),
// until a Migration of the plan succeeded (Done).
type planReconciler struct {
	client    client.Client
	reader    client.Reader // uncached, for Secrets
	opts      Options
	target    *rest.Config
	preflight func(context.Context, preflight.Input) preflight.Report
	now       func() time.Time

	mu   sync.Mutex
	runs map[types.UID]preflightRun
}

// preflightRun is the last preflight of a plan.
type preflightRun struct {
	at     time.Time
	inputs string
	report preflight.Report
}

func (r *planReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	plan := &forkliftv1beta1.Plan{}
	if err := r.client.Get(ctx, req.NamespacedName, plan); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	obs, err := r.observe(ctx, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	var requeue time.Duration
	if len(Blockers(*obs)) == 0 && !Executing(obs.Migrations) && !Done(plan, obs.Migrations) {
		report, next := r.preflightReport(ctx, obs)
		obs.Report = &report
		requeue = next
	}
	conditions := PlanConditions(*obs)
	if !equality.Semantic.DeepEqual(conditions, plan.Status.Conditions) || plan.Status.ObservedGeneration != plan.Generation {
		updated := plan.DeepCopy()
		updated.Status.Conditions = conditions
		updated.Status.ObservedGeneration = plan.Generation
		if err := r.client.Status().Patch(ctx, updated, client.MergeFrom(plan)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r *planReconciler) observe(ctx context.Context, plan *forkliftv1beta1.Plan) (*PlanObserved, error) {
	obs := &PlanObserved{Plan: plan, ToolkitNamespace: r.opts.Namespace, Now: r.now()}
	var err error
	if obs.Toolkit, err = toolkitOf(ctx, r.client, r.opts.Namespace); err != nil {
		return nil, err
	}
	if obs.Source, err = getOrNil[forkliftv1beta1.Provider](ctx, r.client, plan.Spec.Provider.Source, plan.Namespace); err != nil {
		return nil, err
	}
	if obs.Destination, err = getOrNil[forkliftv1beta1.Provider](ctx, r.client, plan.Spec.Provider.Destination, plan.Namespace); err != nil {
		return nil, err
	}
	if obs.NetworkMap, err = getOrNil[forkliftv1beta1.NetworkMap](ctx, r.client, plan.Spec.Map.Network, plan.Namespace); err != nil {
		return nil, err
	}
	if obs.StorageMap, err = getOrNil[forkliftv1beta1.StorageMap](ctx, r.client, plan.Spec.Map.Storage, plan.Namespace); err != nil {
		return nil, err
	}
	if obs.Migrations, err = migrationsOf(ctx, r.client, plan); err != nil {
		return nil, err
	}
	return obs, nil
}

// preflightReport runs the preflight when its inputs changed or the last
// run is PlanRecheck old, else reuses the last report; next is when to
// look again.
func (r *planReconciler) preflightReport(ctx context.Context, obs *PlanObserved) (preflight.Report, time.Duration) {
	inputs := preflightInputs(obs)
	key := types.NamespacedName{Namespace: obs.Plan.Namespace, Name: obs.Plan.Name}
	r.mu.Lock()
	last, ran := r.runs[obs.Plan.UID]
	r.mu.Unlock()
	if ran && last.inputs == inputs && obs.Now.Sub(last.at) < r.opts.PlanRecheck {
		return last.report, r.opts.PlanRecheck - obs.Now.Sub(last.at)
	}
	report := r.runPreflight(ctx, obs)
	r.mu.Lock()
	if len(r.runs) > maxRemembered {
		r.runs = map[types.UID]preflightRun{}
	}
	r.runs[obs.Plan.UID] = preflightRun{at: obs.Now, inputs: inputs, report: report}
	r.mu.Unlock()
	ctrl.LoggerFrom(ctx).Info("plan checked", "plan", key, "failed", len(report.Failures()))
	return report, r.opts.PlanRecheck
}

func (r *planReconciler) runPreflight(ctx context.Context, obs *PlanObserved) preflight.Report {
	source, err := MigrationSourceConfig(ctx, r.reader, obs.Source, r.target)
	if err != nil {
		return preflight.Report{Checks: []preflight.Check{{
			ID: preflight.TokenValid, Side: preflight.Source, Status: preflight.Failed, Message: err.Error(),
			Fix: "put the source's service-account token in the Provider's Secret (cclm connect does)",
		}}}
	}
	vms := make([]forkliftv1beta1.Ref, len(obs.Plan.Spec.VMs))
	for i, vm := range obs.Plan.Spec.VMs {
		vms[i] = vm.Ref
	}
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	return r.preflight(ctx, preflight.Input{
		Source: source, Target: r.target,
		VirtNamespace: r.opts.VirtNamespace, ToolkitNamespace: r.opts.Namespace,
		VMs: vms, TargetNamespace: obs.Plan.Spec.TargetNamespace,
		NetworkMap: obs.NetworkMap.Spec.Map, StorageMap: obs.StorageMap.Spec.Map,
		DialSync:   r.opts.DialSync,
		SourceName: r.sourceClusterName(obs.Source), TargetName: r.opts.ClusterName,
		SameCluster: obs.Source.IsHost(),
	})
}

// sourceClusterName names the Plan's source cluster in the preflight: the
// Provider's name (cclm connect names it after the source's context), or
// this cluster's for the host Provider.
func (r *planReconciler) sourceClusterName(source *forkliftv1beta1.Provider) string {
	if source.IsHost() && r.opts.ClusterName != "" {
		return r.opts.ClusterName
	}
	return source.Name
}

// maxRemembered bounds the remembered preflight runs (of plans that may
// have been deleted since): past it they are forgotten, and rerun.
const maxRemembered = 1000

// preflightTimeout bounds a whole preflight run (each check has its own,
// shorter, timeout).
const preflightTimeout = 2 * time.Minute

// preflightInputs identifies what a preflight depends on: the
// generations of the plan, its providers, maps and the ForkliftController,
// and the source Provider's phase (a revoked token changes only that).
func preflightInputs(obs *PlanObserved) string {
	generation := func(obj client.Object, present bool) string {
		if !present {
			return "-"
		}
		return fmt.Sprint(obj.GetGeneration())
	}
	parts := []string{
		fmt.Sprint(obs.Plan.Generation),
		generation(obs.Source, obs.Source != nil), generation(obs.Destination, obs.Destination != nil),
		generation(obs.NetworkMap, obs.NetworkMap != nil), generation(obs.StorageMap, obs.StorageMap != nil),
		generation(obs.Toolkit, obs.Toolkit != nil),
	}
	if obs.Source != nil {
		parts = append(parts, obs.Source.Status.Phase)
	}
	return strings.Join(parts, "/")
}

// toolkitOf is the ForkliftController of namespace: the one named
// ForkliftControllerName, else the oldest; nil if none.
func toolkitOf(ctx context.Context, c client.Reader, namespace string) (*forkliftv1beta1.ForkliftController, error) {
	var list forkliftv1beta1.ForkliftControllerList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := &list.Items[i], &list.Items[j]
		if (a.Name == ForkliftControllerName) != (b.Name == ForkliftControllerName) {
			return a.Name == ForkliftControllerName
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
	return &list.Items[0], nil
}

// getOrNil reads the object ref names (its namespace defaulting to
// defaultNamespace); nil when absent or when ref names nothing.
func getOrNil[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c client.Reader, ref corev1.ObjectReference, defaultNamespace string) (PT, error) {
	if ref.Name == "" {
		return nil, nil
	}
	obj := PT(new(T))
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespaceOr(ref.Namespace, defaultNamespace), Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

func namespaceOr(namespace, fallback string) string {
	if namespace == "" {
		return fallback
	}
	return namespace
}

// migrationsOf are the Migrations of plan (its namespace, spec.plan
// naming it).
func migrationsOf(ctx context.Context, c client.Reader, plan *forkliftv1beta1.Plan) ([]forkliftv1beta1.Migration, error) {
	var list forkliftv1beta1.MigrationList
	if err := c.List(ctx, &list, client.InNamespace(plan.Namespace)); err != nil {
		return nil, err
	}
	var out []forkliftv1beta1.Migration
	for _, m := range list.Items {
		if m.Spec.Plan.Name == plan.Name && (m.Spec.Plan.Namespace == "" || m.Spec.Plan.Namespace == plan.Namespace) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b forkliftv1beta1.Migration) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func refName(ref corev1.ObjectReference, defaultNamespace string) string {
	return namespaceOr(ref.Namespace, defaultNamespace) + "/" + ref.Name
}
