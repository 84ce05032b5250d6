package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	connectconfig "github.com/cclm-io/cclm/config/connect"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/internal/trust"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// The toolkit (`cclm toolkit`, the lab's forklift-controller on ocp1)
// drives whole cross-cluster migrations from a Plan and a Migration, after
// the OpenShift guide's setup with its YAML only (done here by hand, as the
// guide's reader would; no `cclm connect`), on clusters that do not trust
// each other's migration CA yet: the pipeline's SynchronizeCertificates
// must do that. Two VMs of one plan at once, then one VM with the
// controller killed at each step of its pipeline.
func TestToolkit(t *testing.T) {
	l := sharedLab(t)
	began := time.Now()
	l.forgetPeerCAs(t)
	l.connectByHand(t)
	t.Logf("connected by hand (token, Providers, maps) in %s", time.Since(began).Round(100*time.Millisecond))
	t.Run("TwoVMsOfOnePlanMigrate", func(t *testing.T) { l.toolkitMigratesTwoVMs(t) })
	t.Run("ManyVMsWithinEveryLimit", func(t *testing.T) { l.toolkitHonoursLimits(t) })
	t.Run("KilledAtEachStep", func(t *testing.T) { l.toolkitSurvivesKills(t) })
	t.Run("CanceledMidTransfer", func(t *testing.T) { l.toolkitCancels(t) })
	t.Run("HooksAreRefused", func(t *testing.T) { l.toolkitRefusesHooks(t) })
	t.Run("BetweenNamespacesOfOneCluster", func(t *testing.T) { l.toolkitMovesBetweenNamespaces(t) })
	t.Run("TheVMArrivesWhole", func(t *testing.T) { l.toolkitCarriesTheWholeVM(t) })
}

// toolkitRefusesHooks: a Plan applied as YAML with a VM that names a hook
// keeps the field (the CRD knows it) and is not Ready, with a Critical
// HooksNotSupported condition naming the hook.
func (l *labEnv) toolkitRefusesHooks(t *testing.T) {
	l.MustKubectl(t, targetCluster, fmt.Sprintf(`apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: toolkit-hooks, namespace: %[1]s}
spec:
  type: live
  targetNamespace: toolkit-hooks
  provider:
    source: {name: %[2]s, namespace: %[1]s}
    destination: {name: %[3]s, namespace: %[1]s}
  map:
    network: {name: %[4]s, namespace: %[1]s}
    storage: {name: %[5]s, namespace: %[1]s}
  vms:
  - name: web
    namespace: toolkit-hooks
    hooks:
    - step: PreHook
      hook: {name: backup, namespace: %[1]s}
`, mtvNamespace, sourceProvider, hostProvider, toolkitNetMap, toolkitStoreMap), "apply", "-f", "-")
	defer l.MustKubectl(t, targetCluster, "", "delete", "plan", "toolkit-hooks", "-n", mtvNamespace)
	var plan forkliftv1beta1.Plan
	labtest.WaitFor(t, "Plan toolkit-hooks to refuse its hook", time.Minute, func() (bool, string) {
		if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: mtvNamespace, Name: "toolkit-hooks"}, &plan); err != nil {
			return false, err.Error()
		}
		c := forkliftv1beta1.FindCondition(plan.Status.Conditions, toolkit.ConditionHooksNotSupported)
		return c != nil && c.Status == forkliftv1beta1.ConditionTrue, fmt.Sprintf("conditions %+v", plan.Status.Conditions)
	})
	if len(plan.Spec.VMs) != 1 || len(plan.Spec.VMs[0].Hooks) != 1 {
		t.Errorf("the API server did not keep spec.vms[0].hooks: %+v", plan.Spec.VMs)
	}
	c := forkliftv1beta1.FindCondition(plan.Status.Conditions, toolkit.ConditionHooksNotSupported)
	if c.Category != forkliftv1beta1.CategoryCritical || !strings.Contains(c.Message, mtvNamespace+"/backup at PreHook") {
		t.Errorf("HooksNotSupported: %+v", c)
	}
	if ready := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady); ready == nil || ready.Status == forkliftv1beta1.ConditionTrue {
		t.Errorf("a plan with hooks is Ready: %+v", ready)
	}
}

// Names of the hand-made setup, the seed's and cclm connect's.
const (
	mtvNamespace    = lab.ToolkitNamespace
	sourceProvider  = sourceCluster // named after the source's context
	hostProvider    = "host"
	toolkitNetMap   = "toolkit-pod"
	toolkitStoreMap = "toolkit-local"
)

// connectByHand does the seed's manual steps: on ocp7 the ClusterRole
// live-migration-role, ServiceAccount cclm in openshift-mtv bound to it
// and its token Secret; on ocp1 a Secret with that token and ocp7's CA,
// the Provider ocp7 and the host Provider; and the maps the plans use. It
// waits for both Providers to be Ready.
func (l *labEnv) connectByHand(t testing.TB) {
	t.Helper()
	l.MustKubectl(t, sourceCluster, string(openshift.ClusterRoleYAML()), "apply", "-f", "-")
	l.MustKubectl(t, sourceCluster, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: cclm, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: cclm}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[2]s}
subjects: [{kind: ServiceAccount, name: cclm, namespace: %[1]s}]
---
apiVersion: v1
kind: Secret
metadata: {name: cclm, namespace: %[1]s, annotations: {kubernetes.io/service-account.name: cclm}}
type: kubernetes.io/service-account-token
`, mtvNamespace, connectconfig.ClusterRoleName), "apply", "-f", "-")
	source := l.Client(t, sourceCluster)
	var token []byte
	labtest.WaitFor(t, "the token controller to fill Secret cclm on ocp7", time.Minute, func() (bool, string) {
		var secret corev1.Secret
		if err := source.Get(context.Background(), client.ObjectKey{Namespace: mtvNamespace, Name: "cclm"}, &secret); err != nil {
			return false, err.Error()
		}
		token = secret.Data[corev1.ServiceAccountTokenKey]
		return len(token) > 0, "no token yet"
	})
	sourceConfig := l.RESTConfig(t, sourceCluster)
	target := l.Client(t, targetCluster)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: sourceProvider + "-token", Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, secret, func() {
		secret.Data = map[string][]byte{forkliftv1beta1.SecretToken: token, forkliftv1beta1.SecretCACert: sourceConfig.CAData}
	})
	providerType := forkliftv1beta1.OpenShift
	remote := &forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Name: sourceProvider, Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, remote, func() {
		remote.Spec = forkliftv1beta1.ProviderSpec{Type: &providerType, URL: sourceConfig.Host, Secret: corev1.ObjectReference{Name: secret.Name, Namespace: mtvNamespace}}
	})
	host := &forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Name: hostProvider, Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, host, func() { host.Spec = forkliftv1beta1.ProviderSpec{Type: &providerType} })
	pair := forkliftv1beta1.ProviderPair{
		Source:      corev1.ObjectReference{Name: sourceProvider, Namespace: mtvNamespace},
		Destination: corev1.ObjectReference{Name: hostProvider, Namespace: mtvNamespace},
	}
	networkMap := &forkliftv1beta1.NetworkMap{ObjectMeta: metav1.ObjectMeta{Name: toolkitNetMap, Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, networkMap, func() {
		networkMap.Spec = forkliftv1beta1.NetworkMapSpec{Provider: pair, Map: []forkliftv1beta1.NetworkPair{{
			Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"},
		}}}
	})
	storageMap := &forkliftv1beta1.StorageMap{ObjectMeta: metav1.ObjectMeta{Name: toolkitStoreMap, Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, storageMap, func() {
		storageMap.Spec = forkliftv1beta1.StorageMapSpec{Provider: pair, Map: []forkliftv1beta1.StoragePair{{
			Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "cclm-local"},
		}}}
	})
	for _, name := range []string{sourceProvider, hostProvider} {
		labtest.WaitFor(t, "Provider "+name+" to be Ready", time.Minute, func() (bool, string) {
			var p forkliftv1beta1.Provider
			if err := target.Get(context.Background(), client.ObjectKey{Namespace: mtvNamespace, Name: name}, &p); err != nil {
				return false, err.Error()
			}
			return p.Status.Phase == toolkit.PhaseReady, fmt.Sprintf("phase %q, conditions %+v", p.Status.Phase, p.Status.Conditions)
		})
	}
}

// guest is a VM with a written data disk, as it was before the
// migration.
type guest struct {
	spec    vmSpec
	uid     string
	mac     string
	booted  *guestagent.Info
	written guestagent.DiskWriteResult
}

// newGuests starts VMs on ocp7 in namespace, all at once, and writes
// each one's data disk.
func (l *labEnv) newGuests(t testing.TB, namespace string, names ...string) []*guest {
	t.Helper()
	var specs []vmSpec
	for _, name := range names {
		spec := vmSpec{name: name, namespace: namespace, memory: "128Mi", dataDisk: "64Mi"}
		l.createVM(t, sourceCluster, spec)
		l.removeAtEnd(t, namespace, name)
		specs = append(specs, spec)
	}
	var guests []*guest
	for _, spec := range specs {
		guests = append(guests, l.readyGuest(t, sourceCluster, spec))
	}
	return guests
}

// readyGuest waits for the guest of spec's VM on cluster to boot, has it
// fill its data disk (with a seed of this run: no other disk, and no
// earlier run's, has the same digest), and records its boot, VM UID and
// MAC once its VMI reports the NIC.
func (l *labEnv) readyGuest(t testing.TB, cluster string, spec vmSpec) *guest {
	t.Helper()
	g := &guest{spec: spec}
	g.booted = l.WaitGuestReady(t, cluster, spec.namespace, spec.name, 2*time.Minute)
	l.GuestCall(t, cluster, spec.namespace, spec.name, guestagent.CmdDiskWrite,
		guestagent.DiskArgs{Disk: "datadisk", Seed: uint64(time.Now().UnixNano())}, &g.written)
	var vm kubevirtv1.VirtualMachine
	if err := l.Client(t, cluster).Get(context.Background(), client.ObjectKey{Namespace: spec.namespace, Name: spec.name}, &vm); err != nil {
		t.Fatal(err)
	}
	g.uid = string(vm.UID)
	labtest.WaitFor(t, "VMI "+spec.name+" to be storage-live-migratable with its NIC reported", 30*time.Second, func() (bool, string) {
		vmi := l.VMI(t, cluster, spec.namespace, spec.name)
		return vmiShowsRunningGuest(vmi), fmt.Sprintf("%+v", vmi.Status.Conditions)
	})
	g.mac = l.VMI(t, cluster, spec.namespace, spec.name).Status.Interfaces[0].MAC
	return g
}

// applyPlan makes a live Plan of the guests, to namespace on ocp1, and
// waits for it to be Ready.
func (l *labEnv) applyPlan(t testing.TB, name, namespace string, guests []*guest) *forkliftv1beta1.Plan {
	t.Helper()
	target := l.Client(t, targetCluster)
	plan := &forkliftv1beta1.Plan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mtvNamespace}}
	labtest.CreateOrUpdate(t, target, plan, func() {
		plan.Spec = forkliftv1beta1.PlanSpec{
			Type: forkliftv1beta1.MigrationLive, TargetNamespace: namespace,
			Provider: forkliftv1beta1.ProviderPair{
				Source:      corev1.ObjectReference{Name: sourceProvider, Namespace: mtvNamespace},
				Destination: corev1.ObjectReference{Name: hostProvider, Namespace: mtvNamespace},
			},
			Map: forkliftv1beta1.PlanMap{
				Network: corev1.ObjectReference{Name: toolkitNetMap, Namespace: mtvNamespace},
				Storage: corev1.ObjectReference{Name: toolkitStoreMap, Namespace: mtvNamespace},
			},
		}
		for _, g := range guests {
			plan.Spec.VMs = append(plan.Spec.VMs, forkliftv1beta1.PlanVM{Ref: forkliftv1beta1.Ref{ID: g.uid, Name: g.spec.name, Namespace: g.spec.namespace}})
		}
	})
	return l.awaitPlanReady(t, name)
}

// awaitPlanReady waits for the Plan to be Ready at its generation.
func (l *labEnv) awaitPlanReady(t testing.TB, name string) *forkliftv1beta1.Plan {
	t.Helper()
	target := l.Client(t, targetCluster)
	plan := &forkliftv1beta1.Plan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mtvNamespace}}
	began := time.Now()
	labtest.WaitFor(t, "Plan "+name+" to be Ready", 2*time.Minute, func() (bool, string) {
		if err := target.Get(context.Background(), client.ObjectKeyFromObject(plan), plan); err != nil {
			return false, err.Error()
		}
		ready := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady)
		return ready != nil && ready.Status == forkliftv1beta1.ConditionTrue && plan.Status.ObservedGeneration == plan.Generation,
			fmt.Sprintf("conditions %+v", plan.Status.Conditions)
	})
	t.Logf("Plan %s Ready (preflight passed) %s after it was applied", name, time.Since(began).Round(100*time.Millisecond))
	return plan
}

// startMigration creates a Migration of the plan.
func (l *labEnv) startToolkitMigration(t testing.TB, plan *forkliftv1beta1.Plan, name string) *forkliftv1beta1.Migration {
	t.Helper()
	m := &forkliftv1beta1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mtvNamespace},
		Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: plan.Name, Namespace: plan.Namespace}},
	}
	if err := l.Client(t, targetCluster).Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (l *labEnv) toolkitMigration(t testing.TB, m *forkliftv1beta1.Migration) *forkliftv1beta1.Migration {
	t.Helper()
	current := &forkliftv1beta1.Migration{}
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKeyFromObject(m), current); err != nil {
		t.Fatal(err)
	}
	return current
}

// phaseLog remembers when each VM was first seen in each phase.
type phaseLog map[string][]string

func (p phaseLog) see(m *forkliftv1beta1.Migration, since time.Time) {
	for _, vm := range m.Status.VMs {
		seen := p[vm.Name]
		if vm.Phase != "" && (len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], vm.Phase+" ")) {
			p[vm.Name] = append(seen, fmt.Sprintf("%s %s", vm.Phase, time.Since(since).Round(100*time.Millisecond)))
		}
	}
}

// forkliftItinerary is Forklift's ocp-live itinerary without the hook and
// Submariner phases: the phases a VM of a live Plan goes through, in order.
var forkliftItinerary = []string{
	"Started", "SynchronizeCertificates", "CreateSecrets", "CreateConfigMaps", "EnsurePreference", "EnsureInstanceType",
	"EnsureDataVolumes", "CreateTarget", "CreateVirtualMachineInstanceMigrations", "WaitForStateTransfer", "Completed",
}

// assertForkliftsOrder: the phases seen of the VM are Forklift's, in its
// order (readings every 100 ms miss the short ones), and end Completed.
func (p phaseLog) assertForkliftsOrder(t testing.TB, vm string) {
	t.Helper()
	last := -1
	for _, entry := range p[vm] {
		phase, _, _ := strings.Cut(entry, " ")
		at := slices.Index(forkliftItinerary, phase)
		if at <= last {
			t.Errorf("VM %s: phase %s is not Forklift's or out of its order; seen %v", vm, phase, p[vm])
		}
		last = max(last, at)
	}
	if last != len(forkliftItinerary)-1 {
		t.Errorf("VM %s did not end in phase Completed: seen %v", vm, p[vm])
	}
}

// awaitMigration polls the Migration until it ends, calling each on
// every reading, and fails the test unless it Succeeded.
func (l *labEnv) awaitMigration(t testing.TB, m *forkliftv1beta1.Migration, timeout time.Duration, each func(*forkliftv1beta1.Migration)) *forkliftv1beta1.Migration {
	t.Helper()
	began := time.Now()
	current := l.followMigration(t, m, timeout, each)
	if c := forkliftv1beta1.FindCondition(current.Status.Conditions, forkliftv1beta1.ConditionSucceeded); c == nil || c.Status != forkliftv1beta1.ConditionTrue {
		t.Fatalf("Migration %s ended: %s", m.Name, describeToolkitMigration(current))
	}
	t.Logf("Migration %s Succeeded %s after it was created", m.Name, time.Since(began).Round(100*time.Millisecond))
	return current
}

// followMigration polls the Migration until it ends, whatever the
// outcome, calling each on every reading; it checks that every VM walked
// Forklift's phases in order.
func (l *labEnv) followMigration(t testing.TB, m *forkliftv1beta1.Migration, timeout time.Duration, each func(*forkliftv1beta1.Migration)) *forkliftv1beta1.Migration {
	t.Helper()
	began := time.Now()
	seen := phaseLog{}
	var current *forkliftv1beta1.Migration
	labtest.WaitEvery(t, "Migration "+m.Name+" to end", 100*time.Millisecond, timeout, func() (bool, string) {
		current = l.toolkitMigration(t, m)
		seen.see(current, began)
		if each != nil {
			each(current)
		}
		return toolkit.MigrationEnded(current), describeToolkitMigration(current)
	})
	for vm, phases := range seen {
		t.Logf("VM %s seen in: %s", vm, strings.Join(phases, ", "))
		seen.assertForkliftsOrder(t, vm)
	}
	return current
}

func describeToolkitMigration(m *forkliftv1beta1.Migration) string {
	var parts []string
	for _, c := range m.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Message))
	}
	for _, vm := range m.Status.VMs {
		step := ""
		for _, s := range toolkit.VMTasks(vm) {
			if s.Phase == toolkit.PhaseRunning || s.Phase == toolkit.PhaseFailed {
				step += fmt.Sprintf(" [%s %s: %s]", s.Name, s.Phase, s.Reason)
			}
		}
		errText := ""
		if vm.Error != nil {
			errText = " error: " + strings.Join(vm.Error.Reasons, "; ")
		}
		parts = append(parts, fmt.Sprintf("VM %s: %s%s%s", vm.Name, vm.Phase, step, errText))
	}
	return strings.Join(parts, " | ")
}

// assertPipelineCompleted: every VM ended in Forklift's phase Completed
// with condition Succeeded, its pipeline Forklift's steps (and cclm's
// Cleanup), every step and task Completed with its timestamps; it logs
// each task's duration.
func assertPipelineCompleted(t *testing.T, m *forkliftv1beta1.Migration) {
	t.Helper()
	forkliftSteps := []string{"Initialize", "PrepareTarget", "Synchronization", "Cleanup"}
	for _, vm := range m.Status.VMs {
		if vm.Phase != "Completed" || toolkit.VMOutcome(vm) != toolkit.VMSucceeded || vm.Started == nil || vm.Completed == nil {
			t.Errorf("VM %s ended %s (%v-%v)", vm.Name, vm.Phase, vm.Started, vm.Completed)
		}
		var steps, took []string
		for _, step := range vm.Pipeline {
			steps = append(steps, step.Name)
			for _, s := range append([]forkliftv1beta1.Task{step.Task}, step.Tasks...) {
				if s.Phase != toolkit.PhaseCompleted || s.Started == nil || s.Completed == nil || s.Completed.Before(s.Started) {
					t.Errorf("VM %s: %s %s is %s (%v-%v)", vm.Name, step.Name, s.Name, s.Phase, s.Started, s.Completed)
				}
			}
			for _, s := range step.Tasks {
				if s.Started != nil && s.Completed != nil {
					took = append(took, fmt.Sprintf("%s %s", s.Name, s.Completed.Sub(s.Started.Time)))
				}
			}
		}
		if !slices.Equal(steps, forkliftSteps) {
			t.Errorf("VM %s: pipeline %q, want %q", vm.Name, steps, forkliftSteps)
		}
		migrate := toolkit.FindVMTask(vm, toolkit.TaskMigrate)
		t.Logf("VM %s: %s; transferred %d of %d bytes, downtime %s ms", vm.Name, strings.Join(took, ", "),
			migrate.Progress.Completed, migrate.Progress.Total, migrate.Annotations[toolkit.AnnotationDowntime])
	}
}

// assertArrivedOnce: the guest runs on ocp1 with the same boot and data,
// in one QEMU; the source VM is Halted with its VMI Succeeded; of what the
// migration made, one VM and its DataVolume are left on ocp1 and no VMIM
// on either side, and nothing else of the VM's name in either namespace.
func (l *labEnv) assertArrivedOnce(t testing.TB, m *forkliftv1beta1.Migration, targetNamespace string, g *guest) {
	t.Helper()
	after := l.WaitGuestReady(t, targetCluster, targetNamespace, g.spec.name, time.Minute)
	if after.BootID != g.booted.BootID {
		t.Errorf("%s rebooted: boot %s on ocp7, %s on ocp1", g.spec.name, g.booted.BootID, after.BootID)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, targetCluster, targetNamespace, g.spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk"}, &verified)
	if !verified.OK || verified.Digest != g.written.Digest {
		t.Errorf("%s's data disk on ocp1: %+v; written on ocp7 with digest %s", g.spec.name, verified, g.written.Digest)
	}
	if pids := labtest.QEMUPids(targetNamespace, g.spec.name); len(pids) != 1 {
		t.Errorf("%s: want one QEMU on ocp1, found %v", g.spec.name, pids)
	}
	if pids := labtest.QEMUPids(g.spec.namespace, g.spec.name); len(pids) != 0 && g.spec.namespace != targetNamespace {
		t.Errorf("%s: QEMU %v still runs on ocp7", g.spec.name, pids)
	}
	t.Logf("%s: the same boot %s on ocp1, data disk digest %s intact", g.spec.name, after.BootID, verified.Digest)
	labtest.WaitFor(t, "source VM "+g.spec.name+" to be Halted", time.Minute, func() (bool, string) {
		var vm kubevirtv1.VirtualMachine
		if err := l.Client(t, sourceCluster).Get(context.Background(), client.ObjectKey{Namespace: g.spec.namespace, Name: g.spec.name}, &vm); err != nil {
			return false, err.Error()
		}
		return vm.EffectiveRunStrategy() == kubevirtv1.RunStrategyHalted, "runStrategy " + string(vm.EffectiveRunStrategy())
	})
	labels := client.MatchingLabels{toolkit.LabelMigration: string(m.UID), toolkit.LabelVMID: g.uid}
	count := func(cluster, namespace string, list client.ObjectList) int {
		if err := l.Client(t, cluster).List(context.Background(), list, client.InNamespace(namespace), labels); err != nil {
			t.Fatal(err)
		}
		switch typed := list.(type) {
		case *kubevirtv1.VirtualMachineList:
			return len(typed.Items)
		case *kubevirtv1.VirtualMachineInstanceMigrationList:
			return len(typed.Items)
		case *cdiv1beta1.DataVolumeList:
			return len(typed.Items)
		}
		return -1
	}
	labtest.WaitFor(t, "the VMIMs of "+g.spec.name+" to be cleaned up", 30*time.Second, func() (bool, string) {
		source, target := count(sourceCluster, g.spec.namespace, &kubevirtv1.VirtualMachineInstanceMigrationList{}), count(targetCluster, targetNamespace, &kubevirtv1.VirtualMachineInstanceMigrationList{})
		return source == 0 && target == 0, fmt.Sprintf("%d VMIMs on ocp7, %d on ocp1", source, target)
	})
	for _, c := range []struct {
		cluster, namespace string
		list               client.ObjectList
		want               int
	}{
		{targetCluster, targetNamespace, &kubevirtv1.VirtualMachineList{}, 1},
		{targetCluster, targetNamespace, &cdiv1beta1.DataVolumeList{}, 1},
		{sourceCluster, g.spec.namespace, &kubevirtv1.VirtualMachineList{}, 0},
		{sourceCluster, g.spec.namespace, &cdiv1beta1.DataVolumeList{}, 0},
	} {
		if n := count(c.cluster, c.namespace, c.list); n != c.want {
			t.Errorf("%s: %d %T labelled for it on %s, want %d", g.spec.name, n, c.list, c.cluster, c.want)
		}
	}
	// Nothing else of the name either: no second VMIM of any name for
	// this VM, no stray VM or DataVolume.
	var vmims kubevirtv1.VirtualMachineInstanceMigrationList
	if err := l.Client(t, targetCluster).List(context.Background(), &vmims, client.InNamespace(targetNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, vmim := range vmims.Items {
		if vmim.Spec.VMIName == g.spec.name {
			t.Errorf("VMIM %s of %s left on ocp1", vmim.Name, g.spec.name)
		}
	}
	var vm kubevirtv1.VirtualMachine
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: targetNamespace, Name: g.spec.name}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.EffectiveRunStrategy() != kubevirtv1.RunStrategyAlways {
		labtest.WaitFor(t, "the receiver VM to take its restore-run-strategy", 30*time.Second, func() (bool, string) {
			if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKeyFromObject(&vm), &vm); err != nil {
				return false, err.Error()
			}
			return vm.EffectiveRunStrategy() == kubevirtv1.RunStrategyAlways, string(vm.EffectiveRunStrategy())
		})
	}
}

// Two running VMs of one plan: both move at once, each through the whole
// pipeline, and the plan's status mirrors them.
func (l *labEnv) toolkitMigratesTwoVMs(t *testing.T) {
	const namespace = "toolkit-two"
	guests := l.newGuests(t, namespace, "alpha", "beta")
	plan := l.applyPlan(t, "toolkit-two", namespace, guests)
	// One VM in flight at a time (Forklift's controller_max_vm_inflight):
	// beta waits, saying why, and starts once alpha has ended.
	l.MustKubectl(t, targetCluster, "", "patch", "forkliftcontroller", toolkit.ForkliftControllerName, "-n", mtvNamespace,
		"--type=merge", "-p", `{"spec":{"controller_max_vm_inflight":1}}`)
	defer l.MustKubectl(t, targetCluster, "", "patch", "forkliftcontroller", toolkit.ForkliftControllerName, "-n", mtvNamespace,
		"--type=json", "-p", `[{"op":"remove","path":"/spec/controller_max_vm_inflight"}]`)
	m := l.startToolkitMigration(t, plan, "toolkit-two-1")
	waited, overlapped := "", false
	m = l.awaitMigration(t, m, 5*time.Minute, func(m *forkliftv1beta1.Migration) {
		inFlight := 0
		for _, vm := range m.Status.VMs {
			if vm.Started != nil && !toolkit.IsFinal(vm) {
				inFlight++
			}
			if first := toolkit.VMTasks(vm); len(first) > 0 && first[0].Phase == toolkit.PhasePending && first[0].Reason != "" {
				waited = vm.Name + ": " + first[0].Reason
			}
		}
		overlapped = overlapped || inFlight > 1
	})
	assertPipelineCompleted(t, m)
	alpha, beta := m.Status.VMs[0], m.Status.VMs[1]
	if overlapped || beta.Started == nil || alpha.Completed == nil || beta.Started.Before(alpha.Completed) {
		t.Errorf("with controller_max_vm_inflight 1, two VMs were in flight at once (%v), or beta started (%v) before alpha ended (%v)", overlapped, beta.Started, alpha.Completed)
	}
	if !strings.HasPrefix(waited, "beta: waiting: 1 of 1 VMs in flight") {
		t.Errorf("beta never said why it waited (last seen %q)", waited)
	}
	for _, g := range guests {
		l.assertArrivedOnce(t, m, namespace, g)
	}
	l.assertTrustEachOtherOnce(t)
	var mirrored forkliftv1beta1.Plan
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKeyFromObject(plan), &mirrored); err != nil {
		t.Fatal(err)
	}
	if len(mirrored.Status.Migration.VMs) != 2 || toolkit.VMOutcome(mirrored.Status.Migration.VMs[0]) != toolkit.VMSucceeded || mirrored.Status.Migration.Completed == nil {
		t.Errorf("the plan's status.migration: %+v", mirrored.Status.Migration)
	}
	if c := forkliftv1beta1.FindCondition(mirrored.Status.Conditions, forkliftv1beta1.ConditionSucceeded); c == nil || c.Status != forkliftv1beta1.ConditionTrue {
		labtest.WaitFor(t, "the plan to show Succeeded", 30*time.Second, func() (bool, string) {
			if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKeyFromObject(plan), &mirrored); err != nil {
				return false, err.Error()
			}
			c := forkliftv1beta1.FindCondition(mirrored.Status.Conditions, forkliftv1beta1.ConditionSucceeded)
			return c != nil && c.Status == forkliftv1beta1.ConditionTrue, fmt.Sprintf("%+v", mirrored.Status.Conditions)
		})
	}
}

// The toolkit SIGKILLed as soon as the VM is seen in each of these steps
// (the lab restarts it within a second): the migration carries on and
// ends as one without kills, nothing made twice.
var killSteps = []string{
	toolkit.TaskCreateVolumes, toolkit.TaskCreateReceiver, toolkit.TaskWaitForReceiver, toolkit.TaskCreateTargetMigration,
	toolkit.TaskCreateSourceMigration, toolkit.TaskMigrate, toolkit.TaskCleanup,
}

func (l *labEnv) toolkitSurvivesKills(t *testing.T) {
	const namespace = "toolkit-kill"
	// A slow link keeps Migrate long enough to be killed in.
	restore := l.SetMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"16Mi"}`)
	defer restore()
	guests := l.newGuests(t, namespace, "gamma")
	plan := l.applyPlan(t, "toolkit-kill", namespace, guests)
	m := l.startToolkitMigration(t, plan, "toolkit-kill-1")
	next := 0
	var killedIn []string
	m = l.awaitMigration(t, m, 5*time.Minute, func(current *forkliftv1beta1.Migration) {
		if next >= len(killSteps) || len(current.Status.VMs) == 0 {
			return
		}
		task := toolkit.CurrentTaskName(current.Status.VMs[0])
		at := slices.Index(toolkit.Tasks, task)
		if at < 0 || at < slices.Index(toolkit.Tasks, killSteps[next]) {
			return
		}
		pid := l.ControllerPid(t, targetCluster, lab.ToolkitControllerName)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killedIn = append(killedIn, task)
		for next < len(killSteps) && slices.Index(toolkit.Tasks, killSteps[next]) <= at {
			next++
		}
		labtest.WaitFor(t, "the lab to restart the toolkit", 30*time.Second, func() (bool, string) {
			now := l.ControllerPid(t, targetCluster, lab.ToolkitControllerName)
			return now != pid, fmt.Sprintf("pid still %d", pid)
		})
	})
	t.Logf("the toolkit was killed in %d steps: %s", len(killedIn), strings.Join(killedIn, ", "))
	if len(killedIn) < 3 || !slices.Contains(killedIn, toolkit.TaskMigrate) {
		t.Errorf("killed in %v only: want at least three steps, Migrate among them", killedIn)
	}
	assertPipelineCompleted(t, m)
	l.assertArrivedOnce(t, m, namespace, guests[0])
}

// A VM canceled through spec.cancel while its memory and disk stream: the
// sending VMIM is deleted (the sync controller tells ocp1), what was made
// on ocp1 is removed, and the guest runs on at the source, the same boot.
func (l *labEnv) toolkitCancels(t *testing.T) {
	const namespace = "toolkit-cancel"
	restore := l.SetMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"4Mi","progressTimeout":300}`)
	defer restore()
	guests := l.newGuests(t, namespace, "delta")
	g := guests[0]
	const targetNamespace = namespace + "-to" // QEMUs of both sides told apart by namespace
	plan := l.applyPlan(t, "toolkit-cancel", targetNamespace, guests)
	m := l.startToolkitMigration(t, plan, "toolkit-cancel-1")
	target := l.Client(t, targetCluster)
	var canceledAt time.Time
	labtest.WaitEvery(t, "Migration "+m.Name+" to end", 100*time.Millisecond, 4*time.Minute, func() (bool, string) {
		current := l.toolkitMigration(t, m)
		if canceledAt.IsZero() && len(current.Status.VMs) == 1 && current.Status.VMs[0].Phase == toolkit.PhaseWaitForStateTransfer {
			migrate := toolkit.FindVMTask(current.Status.VMs[0], toolkit.TaskMigrate)
			if migrate.Progress.Completed > 0 {
				current.Spec.Cancel = []forkliftv1beta1.Ref{{Name: g.spec.name, Namespace: g.spec.namespace}}
				if err := target.Update(context.Background(), current); err != nil {
					return false, err.Error()
				}
				canceledAt = time.Now()
				t.Logf("canceled after %d of %d bytes", migrate.Progress.Completed, migrate.Progress.Total)
			}
		}
		m = current
		return toolkit.MigrationEnded(current), describeToolkitMigration(current)
	})
	if c := forkliftv1beta1.FindCondition(m.Status.Conditions, forkliftv1beta1.ConditionCanceled); c == nil || c.Status != forkliftv1beta1.ConditionTrue || m.Status.VMs[0].Phase != toolkit.VMPhaseCompleted || toolkit.VMOutcome(m.Status.VMs[0]) != toolkit.VMCanceled {
		t.Fatalf("after the cancel the Migration ended: %s", describeToolkitMigration(m))
	}
	t.Logf("canceled and cleaned up %s after the cancel", time.Since(canceledAt).Round(100*time.Millisecond))
	l.assertStayedHome(t, m, g, targetNamespace)
}

// assertStayedHome: a VM whose migration was canceled (or failed) runs on
// at the source, the same boot, with its runStrategy, in one QEMU, and
// nothing made for it is left on either cluster.
func (l *labEnv) assertStayedHome(t *testing.T, m *forkliftv1beta1.Migration, g *guest, targetNamespace string) {
	t.Helper()
	namespace := g.spec.namespace
	labels := client.MatchingLabels{toolkit.LabelMigration: string(m.UID), toolkit.LabelVMID: g.uid}
	for _, c := range []struct {
		cluster string
		list    client.ObjectList
	}{
		{targetCluster, &kubevirtv1.VirtualMachineList{}}, {targetCluster, &cdiv1beta1.DataVolumeList{}},
		{targetCluster, &kubevirtv1.VirtualMachineInstanceMigrationList{}}, {sourceCluster, &kubevirtv1.VirtualMachineInstanceMigrationList{}},
	} {
		if err := l.Client(t, c.cluster).List(context.Background(), c.list, labels); err != nil {
			t.Fatal(err)
		}
		if n := meta.LenList(c.list); n != 0 {
			t.Errorf("%d %T left on %s after the cancel", n, c.list, c.cluster)
		}
	}
	labtest.WaitFor(t, "no QEMU of the receiver on ocp1", time.Minute, func() (bool, string) {
		source, receiver := labtest.QEMUPids(namespace, g.spec.name), labtest.QEMUPids(targetNamespace, g.spec.name)
		if targetNamespace == namespace { // one set of QEMUs: the source's alone
			receiver = nil
		}
		vmi := l.VMI(t, sourceCluster, namespace, g.spec.name)
		return len(source) == 1 && len(receiver) == 0 && vmi != nil && vmi.Status.Phase == kubevirtv1.Running,
			fmt.Sprintf("source QEMUs %v, receiver QEMUs %v, source %s", source, receiver, vmiPhase(vmi))
	})
	info := l.WaitGuestReady(t, sourceCluster, namespace, g.spec.name, 30*time.Second)
	if info.BootID != g.booted.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", g.booted.BootID, info.BootID)
	}
	var vm kubevirtv1.VirtualMachine
	if err := l.Client(t, sourceCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: g.spec.name}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.EffectiveRunStrategy() != kubevirtv1.RunStrategyAlways {
		t.Errorf("the source VM's runStrategy is %s after the cancel", vm.EffectiveRunStrategy())
	}
}

// forgetPeerCAs deletes each lab cluster's kubevirt-external-ca: neither
// trusts the other's migration CA any more, as on clusters just set up by
// the OpenShift guide, which leaves that to the toolkit.
func (l *labEnv) forgetPeerCAs(t *testing.T) {
	t.Helper()
	for _, cluster := range []string{sourceCluster, targetCluster} {
		external := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: virtNamespace, Name: trust.ExternalCAConfigMap}}
		if err := l.Client(t, cluster).Delete(context.Background(), external); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
	}
}

// assertTrustEachOtherOnce: each cluster's kubevirt-external-ca holds the
// other's migration CA, each certificate once (two VMs, two imports).
func (l *labEnv) assertTrustEachOtherOnce(t *testing.T) {
	t.Helper()
	bundle := func(cluster, name string) string {
		var cm corev1.ConfigMap
		if err := l.Client(t, cluster).Get(context.Background(), client.ObjectKey{Namespace: virtNamespace, Name: name}, &cm); err != nil {
			t.Fatalf("%s's ConfigMap %s: %v", cluster, name, err)
		}
		return cm.Data[trust.BundleKey]
	}
	for _, pair := range [][2]string{{sourceCluster, targetCluster}, {targetCluster, sourceCluster}} {
		own, peer := pair[0], pair[1]
		external := bundle(own, trust.ExternalCAConfigMap)
		peerCA := bundle(peer, trust.CABundleConfigMap)
		if missing, err := trust.Missing("", external, peerCA); err != nil || missing != 0 {
			t.Errorf("%s's %s lacks %d certificate(s) of %s's %s (%v)", own, trust.ExternalCAConfigMap, missing, peer, trust.CABundleConfigMap, err)
		}
		blocks, _ := trust.ParseBundle(external)
		peerBlocks, _ := trust.ParseBundle(peerCA)
		if len(blocks) != len(peerBlocks) {
			t.Errorf("%s's %s holds %d certificates, want the %d of %s's CA, once", own, trust.ExternalCAConfigMap, len(blocks), len(peerBlocks), peer)
		}
	}
}
