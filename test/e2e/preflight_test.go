package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/test/labtest"
)

// Preflight on the lab: a running VM on ocp7, read with the token of a
// ServiceAccount bound to the seed's ClusterRole, passes every check; each
// refusal of the issue is made for real and names its check and fix; and
// no run creates anything on either cluster.
func TestPreflight(t *testing.T) {
	l := sharedLab(t)
	p := newPreflightEnv(t, l)
	t.Run("Passes", p.passes)
	t.Run("GateOffOnOneSide", p.gateOff)
	t.Run("TokenMissingAVerb", p.tokenMissingAVerb)
	t.Run("StoppedVM", p.stoppedVM)
	t.Run("UnmappedStorageClass", p.unmappedStorageClass)
	t.Run("CPUModelNoTargetNodeOffers", p.cpuModelNotOffered)
	t.Run("UnreachableSyncAddress", p.unreachableSync)
	t.Run("OverlappingIPRanges", p.overlappingRanges)
}

const (
	preflightNamespace = "preflight"
	preflightVM        = "pf"
	// seedSA is the ServiceAccount made with the seed's steps; reducedSA
	// is bound to a ClusterRole lacking one verb.
	seedSA      = "preflight-seed"
	reducedSA   = "preflight-reduced"
	reducedRole = "live-migration-role-no-vmim-create"
	mtvNS       = "openshift-mtv"
)

type preflightEnv struct {
	l     *labEnv
	token string // of seedSA
	base  preflight.Input
}

func newPreflightEnv(t *testing.T, l *labEnv) *preflightEnv {
	p := &preflightEnv{l: l}
	l.createVM(t, sourceCluster, vmSpec{name: preflightVM, namespace: preflightNamespace, dataDisk: "64Mi"})
	l.EnsureNamespace(t, targetCluster, preflightNamespace)
	l.ensureToolkitEnabled(t)
	p.token = l.seedServiceAccountToken(t, seedSA, preflight.ClusterRoleName)
	l.WaitGuestReady(t, sourceCluster, preflightNamespace, preflightVM, 90*time.Second)
	labtest.WaitFor(t, "the VMI's status to show the running guest", 30*time.Second, func() (bool, string) {
		vmi := l.VMI(t, sourceCluster, preflightNamespace, preflightVM)
		return vmi != nil && vmiShowsRunningGuest(vmi), vmiPhase(vmi)
	})
	p.base = preflight.Input{
		Source:          p.tokenConfig(t, p.token),
		Target:          l.RESTConfig(t, targetCluster),
		SourceNodes:     l.RESTConfig(t, sourceCluster),
		VMs:             []forkliftv1beta1.Ref{{Namespace: preflightNamespace, Name: preflightVM}},
		TargetNamespace: preflightNamespace,
		NetworkMap: []forkliftv1beta1.NetworkPair{{
			Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"},
		}},
		StorageMap: []forkliftv1beta1.StoragePair{{
			Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "cclm-local"},
		}},
		SourceName: sourceCluster, TargetName: targetCluster,
		// From the dialing side's sync controller's network namespace, as
		// the peers dial each other.
		DialSync: lab.SyncDialer(lab.ID(l.Dir)),
		Timeout:  5 * time.Second,
	}
	return p
}

// tokenConfig reaches ocp7 with a bearer token only, as the toolkit does
// with the Provider's secret.
func (p *preflightEnv) tokenConfig(t *testing.T, token string) *rest.Config {
	config := rest.AnonymousClientConfig(p.l.RESTConfig(t, sourceCluster))
	config.BearerToken = token
	return config
}

// ensureToolkitEnabled makes sure ocp1 has a ForkliftController with the
// live migration flag (the lab's toolkit may have made it already).
func (l *labEnv) ensureToolkitEnabled(t testing.TB) {
	t.Helper()
	l.EnsureNamespace(t, targetCluster, mtvNS)
	var list forkliftv1beta1.ForkliftControllerList
	if err := l.Client(t, targetCluster).List(context.Background(), &list, client.InNamespace(mtvNS)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].LiveMigrationEnabled() {
			return
		}
	}
	l.MustKubectl(t, targetCluster, string(openshift.ForkliftControllerYAML()), "apply", "-f", "-")
}

// seedServiceAccountToken does on ocp7 what the seed's page does for the
// provider's token, with a ServiceAccount of the given name bound to the
// given ClusterRole: the ClusterRole live-migration-role from the seed's
// clusterrole.yaml, namespace openshift-mtv, the ServiceAccount, a
// ClusterRoleBinding, a token Secret; it returns the token.
func (l *labEnv) seedServiceAccountToken(t testing.TB, name, clusterRole string) string {
	t.Helper()
	l.MustKubectl(t, sourceCluster, "", "apply", "-f", filepath.Join(testenv.OpenShiftExamples(), openshift.ClusterRoleFile))
	l.EnsureNamespace(t, sourceCluster, mtvNS)
	l.MustKubectl(t, sourceCluster, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s, namespace: %[2]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[3]s}
subjects:
- {kind: ServiceAccount, name: %[1]s, namespace: %[2]s}
---
apiVersion: v1
kind: Secret
metadata:
  name: %[1]s
  namespace: %[2]s
  annotations:
    kubernetes.io/service-account.name: %[1]s
type: kubernetes.io/service-account-token
`, name, mtvNS, clusterRole), "apply", "-f", "-")
	var token string
	c := l.Client(t, sourceCluster)
	labtest.WaitFor(t, "the token controller to fill Secret "+mtvNS+"/"+name, 30*time.Second, func() (bool, string) {
		var secret corev1.Secret
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: mtvNS, Name: name}, &secret); err != nil {
			return false, err.Error()
		}
		token = string(secret.Data[corev1.ServiceAccountTokenKey])
		return token != "", "data.token still empty"
	})
	return token
}

// objectSet names every object preflight could be tempted to create, on
// both clusters, in the namespaces it reads: kind, cluster, namespace,
// name and UID.
func (l *labEnv) objectSet(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, cluster := range []string{sourceCluster, targetCluster} {
		c := l.Client(t, cluster)
		for _, ns := range []string{preflightNamespace, virtNamespace, mtvNS} {
			lists := map[string]client.ObjectList{
				"VirtualMachineInstanceMigration": &kubevirtv1.VirtualMachineInstanceMigrationList{},
				"VirtualMachine":                  &kubevirtv1.VirtualMachineList{},
				"VirtualMachineInstance":          &kubevirtv1.VirtualMachineInstanceList{},
				"DataVolume":                      &cdiv1beta1.DataVolumeList{},
				"PersistentVolumeClaim":           &corev1.PersistentVolumeClaimList{},
				"Secret":                          &corev1.SecretList{},
				"ConfigMap":                       &corev1.ConfigMapList{},
				"NetworkAttachmentDefinition":     &cniv1.NetworkAttachmentDefinitionList{},
			}
			for kind, list := range lists {
				if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
					t.Fatal(err)
				}
				items, err := metaItems(list)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range items {
					names = append(names, fmt.Sprintf("%s %s %s/%s %s", cluster, kind, o.GetNamespace(), o.GetName(), o.GetUID()))
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

func metaItems(list client.ObjectList) ([]metav1.Object, error) {
	objects, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]metav1.Object, 0, len(objects))
	for _, o := range objects {
		out = append(out, o.(metav1.Object))
	}
	return out, nil
}

// run runs preflight and checks that it created (and deleted)
// nothing on either cluster.
func (p *preflightEnv) run(t *testing.T, in preflight.Input) preflight.Report {
	t.Helper()
	before := p.l.objectSet(t)
	began := time.Now()
	report := preflight.Run(context.Background(), in)
	t.Logf("preflight took %s:\n%s", time.Since(began).Round(time.Millisecond), dumpReport(report))
	after := p.l.objectSet(t)
	if !slices.Equal(before, after) {
		t.Fatalf("preflight changed the clusters' objects:\nbefore: %v\nafter:  %v", diff(before, after), diff(after, before))
	}
	return report
}

// diff lists what a has and b has not.
func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func dumpReport(r preflight.Report) string {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "  %-24s %-7s %-8s %-8s %s\n", c.ID, c.Side, c.VM, c.Status, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(&b, "  %52s fix: %s\n", "", c.Fix)
		}
	}
	return b.String()
}

// refused asserts that check id (on side, if given) failed with a message
// and a fix containing the given texts, and returns it.
func refused(t *testing.T, r preflight.Report, id string, side preflight.Side, message, fix string) preflight.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID != id || (side != "" && c.Side != side) {
			continue
		}
		if c.Status != preflight.Failed || !strings.Contains(c.Message, message) || !strings.Contains(c.Fix, fix) {
			t.Fatalf("want %s (%s) Failed with %q in its message and %q in its fix, got %+v", id, side, message, fix, c)
		}
		if r.OK() {
			t.Fatal("the report is OK with a failed check")
		}
		t.Logf("refused: %s %s: %s\n  fix: %s", c.ID, c.Side, c.Message, c.Fix)
		return c
	}
	t.Fatalf("no check %s (%s) in the report", id, side)
	return preflight.Check{}
}

func (p *preflightEnv) passes(t *testing.T) {
	report := p.run(t, p.base)
	if !report.OK() {
		t.Fatalf("the running VM should pass preflight; failures: %+v", report.Failures())
	}
	for _, c := range report.Checks {
		if c.Status != preflight.Passed {
			t.Errorf("every check should pass (the token may read all it needs, SourceNodes reads the node): %+v", c)
		}
	}
}

// gateOff turns DecentralizedLiveMigration off in ocp1's KubeVirt CR.
func (p *preflightEnv) gateOff(t *testing.T) {
	l := p.l
	previous := l.MustKubectl(t, targetCluster, "", "get", "kubevirt", "kubevirt", "-n", virtNamespace, "-o", "jsonpath={.spec.configuration.developerConfiguration.featureGates}")
	l.MustKubectl(t, targetCluster, "", "patch", "kubevirt", "kubevirt", "-n", virtNamespace, "--type=merge",
		"-p", `{"spec":{"configuration":{"developerConfiguration":{"featureGates":[]}}}}`)
	defer l.MustKubectl(t, targetCluster, "", "patch", "kubevirt", "kubevirt", "-n", virtNamespace, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"configuration":{"developerConfiguration":{"featureGates":%s}}}}`, previous))
	report := p.run(t, p.base)
	refused(t, report, preflight.FeatureGate, preflight.Target, "KubeVirt openshift-cnv/kubevirt on ocp1 does not enable feature gate DecentralizedLiveMigration",
		`kubectl --context ocp1 patch kubevirt kubevirt -n openshift-cnv --type=merge -p '{"spec":{"configuration":{"developerConfiguration":{"featureGates":["DecentralizedLiveMigration"]}}}}'`)
	onlyFailures(t, report, preflight.FeatureGate)
}

// tokenMissingAVerb: a ServiceAccount bound to the seed's rules less
// create on virtualmachineinstancemigrations.
func (p *preflightEnv) tokenMissingAVerb(t *testing.T) {
	l := p.l
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(openshift.ClusterRoleYAML(), &role); err != nil {
		t.Fatal(err)
	}
	role.Name = reducedRole
	var rules []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		if slices.Contains(rule.Resources, "virtualmachineinstancemigrations") {
			rest := rule.DeepCopy()
			rest.Resources = slices.DeleteFunc(rest.Resources, func(r string) bool { return r == "virtualmachineinstancemigrations" })
			rules = append(rules, *rest)
			rule.Resources = []string{"virtualmachineinstancemigrations"}
			rule.Verbs = slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == "create" })
		}
		rules = append(rules, rule)
	}
	role.Rules = rules
	manifest, err := yaml.Marshal(role)
	if err != nil {
		t.Fatal(err)
	}
	l.MustKubectl(t, sourceCluster, string(manifest), "apply", "-f", "-")
	token := l.seedServiceAccountToken(t, reducedSA, reducedRole)
	in := p.base
	in.Source = p.tokenConfig(t, token)
	report := p.run(t, in)
	refused(t, report, preflight.TokenPermissions, preflight.Source,
		"may not do 1 of the 20 things the migration needs on ocp7: create virtualmachineinstancemigrations.kubevirt.io in namespace preflight",
		`{apiGroups: ["kubevirt.io"], resources: [virtualmachineinstancemigrations], verbs: [create]}`)
	onlyFailures(t, report, preflight.TokenPermissions)
}

func (p *preflightEnv) stoppedVM(t *testing.T) {
	l := p.l
	l.createVM(t, sourceCluster, vmSpec{name: "pf-stopped", namespace: preflightNamespace, runStrategy: "Halted"})
	in := p.base
	in.VMs = []forkliftv1beta1.Ref{{Namespace: preflightNamespace, Name: "pf-stopped"}}
	report := p.run(t, in)
	refused(t, report, preflight.VMRunning, "", "VM preflight/pf-stopped on ocp7 is not running: it has no VMI (runStrategy Halted",
		`kubectl --context ocp7 patch vm pf-stopped -n preflight --type=merge -p '{"spec":{"runStrategy":"Always"}}'`)
	onlyFailures(t, report, preflight.VMRunning)
}

func (p *preflightEnv) unmappedStorageClass(t *testing.T) {
	in := p.base
	in.StorageMap = []forkliftv1beta1.StoragePair{{
		Source: forkliftv1beta1.Ref{Name: "fast-ssd"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "cclm-local"},
	}}
	report := p.run(t, in)
	refused(t, report, preflight.StorageMapped, "", `storage class "cclm-local" (of PVC pf-data) has no entry in the StorageMap`,
		"{source: {name: cclm-local}, destination: {storageClass: <a class of ocp1: cclm-local>}}")
	onlyFailures(t, report, preflight.StorageMapped)
}

// cpuModelNotOffered: a VM whose CPU model no ocp1 node is labelled with.
// The clusters' nodes share this machine's CPU, so ocp7 cannot run it
// either: the VM stays Halted and VMRunning fails too.
func (p *preflightEnv) cpuModelNotOffered(t *testing.T) {
	l := p.l
	var nodes corev1.NodeList
	if err := l.Client(t, targetCluster).List(context.Background(), &nodes); err != nil {
		t.Fatal(err)
	}
	model := ""
	for _, candidate := range []string{"EPYC-Genoa", "SapphireRapids", "GraniteRapids", "Icelake-Server", "Cascadelake-Server", "Skylake-Server", "EPYC-Rome"} {
		offered := false
		for _, n := range nodes.Items {
			offered = offered || n.Labels["cpu-model.node.kubevirt.io/"+candidate] == "true"
		}
		if !offered {
			model = candidate
			break
		}
	}
	if model == "" {
		t.Fatal("every candidate CPU model is offered by an ocp1 node")
	}
	manifest := vmSpec{name: "pf-cpu", namespace: preflightNamespace, runStrategy: "Halted"}.manifest()
	manifest = strings.Replace(manifest, "      domain:\n", fmt.Sprintf("      domain:\n        cpu: {model: %s}\n", model), 1)
	l.MustKubectl(t, sourceCluster, manifest, "apply", "-f", "-")
	in := p.base
	in.VMs = []forkliftv1beta1.Ref{{Namespace: preflightNamespace, Name: "pf-cpu"}}
	report := p.run(t, in)
	refused(t, report, preflight.CPUModel, preflight.Target,
		fmt.Sprintf("VM preflight/pf-cpu needs CPU model %s (spec.template.spec.domain.cpu.model), which no node of ocp1 offers", model),
		"spec.template.spec.domain.cpu.model")
	onlyFailures(t, report, preflight.CPUModel, preflight.VMRunning)
}

// unreachableSync freezes ocp1's sync controller: its socket still
// accepts TCP, but no TLS answer comes.
func (p *preflightEnv) unreachableSync(t *testing.T) {
	pid := p.l.ControllerPid(t, targetCluster, syncControllerName)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	report := p.run(t, p.base)
	resume()
	c := refused(t, report, preflight.SyncReachable, preflight.Target,
		"ocp1's synchronization controller is unreachable from ocp7's synchronization controller's network", "ocp1's virt-synchronization-controller runs")
	if !strings.Contains(c.Message, "TCP connected but no TLS server answer") {
		t.Fatalf("a frozen controller accepts TCP but never answers TLS; the message should say so: %s", c.Message)
	}
	onlyFailures(t, report, preflight.SyncReachable)
}

// overlappingRanges points ocp1's migration network at a copy of ocp7's
// NAD: both hand out the same half of 192.168.201.0/24.
func (p *preflightEnv) overlappingRanges(t *testing.T) {
	l := p.l
	var source cniv1.NetworkAttachmentDefinition
	if err := l.Client(t, sourceCluster).Get(context.Background(), client.ObjectKey{Namespace: virtNamespace, Name: lab.MigrationNADName}, &source); err != nil {
		t.Fatal(err)
	}
	const copyName = "livemigration-network-ocp7-copy"
	target := l.Client(t, targetCluster)
	dup := &cniv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: virtNamespace, Name: copyName},
		Spec:       source.Spec,
	}
	if err := target.Create(context.Background(), dup); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := target.Delete(context.Background(), dup); err != nil {
			t.Error(err)
		}
	}()
	restore := l.SetMigrationConfig(t, targetCluster, fmt.Sprintf(`{"network":%q}`, copyName))
	defer restore()
	report := p.run(t, p.base)
	refused(t, report, preflight.MigrationRangesDisjoint, "",
		"ocp7's migration NAD openshift-cnv/livemigration-network (whereabouts 192.168.201.0/24 192.168.201.1-192.168.201.254 excluding 192.168.201.128/25) and ocp1's openshift-cnv/livemigration-network-ocp7-copy",
		`"exclude": ["192.168.201.128/25"] in one NAD and ["192.168.201.0/25"] in the other`)
	onlyFailures(t, report, preflight.MigrationRangesDisjoint)
}

// onlyFailures: no check failed but the named ones.
func onlyFailures(t *testing.T, r preflight.Report, ids ...string) {
	t.Helper()
	for _, c := range r.Failures() {
		if !slices.Contains(ids, c.ID) {
			t.Errorf("unexpected failure besides %v: %+v", ids, c)
		}
	}
}
