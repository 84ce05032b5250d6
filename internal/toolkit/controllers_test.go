package toolkit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/scheme"
)

func provider(url string) *forkliftv1beta1.Provider {
	openshift := forkliftv1beta1.OpenShift
	return &forkliftv1beta1.Provider{
		ObjectMeta: metav1.ObjectMeta{Name: "ocp7", Namespace: DefaultNamespace, Generation: 2},
		Spec:       forkliftv1beta1.ProviderSpec{Type: &openshift, URL: url, Secret: corev1.ObjectReference{Name: "ocp7-token"}},
	}
}

func TestProviderStatus(t *testing.T) {
	type want struct {
		phase, condition string
		ready            string
	}
	for _, tc := range []struct {
		name  string
		p     *forkliftv1beta1.Provider
		probe ProbeResult
		want  want
	}{
		{"the host provider is Ready at once", provider(""), ProbeResult{}, want{PhaseReady, ConditionConnectionTestSucceeded, "True"}},
		{"a reachable source with a good token", provider("https://x:6443"), ProbeResult{Outcome: ProbeOK, Message: "connected"}, want{PhaseReady, ConditionConnectionTestSucceeded, "True"}},
		{"unreachable", provider("https://x:6443"), ProbeResult{Outcome: ProbeConnectionFailed, Message: "cannot reach"}, want{PhaseConnectionFailed, ConditionConnectionFailed, "False"}},
		{"401", provider("https://x:6443"), ProbeResult{Outcome: ProbeTokenInvalid, Message: "refused the token"}, want{PhaseTokenInvalid, ConditionTokenInvalid, "False"}},
		{"403", provider("https://x:6443"), ProbeResult{Outcome: ProbePermissionDenied, Message: "may not list"}, want{PhasePermissionDenied, ConditionPermissionDenied, "False"}},
		{"no Secret", provider("https://x:6443"), ProbeResult{Outcome: ProbeSecretNotValid, Message: "no Secret"}, want{PhaseValidationFailed, ConditionSecretNotValid, "False"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := ProviderStatus(tc.p, tc.probe, t0)
			if status.Phase != tc.want.phase || status.ObservedGeneration != 2 {
				t.Errorf("phase %q generation %d, want %q", status.Phase, status.ObservedGeneration, tc.want.phase)
			}
			c := forkliftv1beta1.FindCondition(status.Conditions, tc.want.condition)
			if c == nil || c.Status != "True" && tc.want.condition != ConditionConnectionTestSucceeded {
				t.Errorf("conditions %+v lack %s True", status.Conditions, tc.want.condition)
			}
			if c != nil && c.Status == "True" && c.Type != ConditionConnectionTestSucceeded && c.Category != forkliftv1beta1.CategoryCritical {
				t.Errorf("failure condition %+v is not Critical", c)
			}
			ready := forkliftv1beta1.FindCondition(status.Conditions, forkliftv1beta1.ConditionReady)
			if ready == nil || ready.Status != tc.want.ready {
				t.Errorf("Ready %+v, want %s", ready, tc.want.ready)
			}
		})
	}
	t.Run("an unchanged condition keeps its transition time", func(t *testing.T) {
		p := provider("https://x:6443")
		p.Status = ProviderStatus(p, ProbeResult{Outcome: ProbeOK}, t0)
		again := ProviderStatus(p, ProbeResult{Outcome: ProbeOK}, t0.Add(time.Minute))
		if !again.Conditions[0].LastTransitionTime.Equal(&p.Status.Conditions[0].LastTransitionTime) {
			t.Errorf("transition time moved: %v -> %v", p.Status.Conditions[0].LastTransitionTime, again.Conditions[0].LastTransitionTime)
		}
		revoked := ProviderStatus(p, ProbeResult{Outcome: ProbeTokenInvalid}, t0.Add(time.Minute))
		if c := forkliftv1beta1.FindCondition(revoked.Conditions, forkliftv1beta1.ConditionReady); c.Status != "False" || !c.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
			t.Errorf("a revoked token: Ready %+v", c)
		}
	})
}

func TestSourceConfig(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ocp7-token", Namespace: DefaultNamespace},
		Data: map[string][]byte{"token": []byte("sekrit"), "ca.crt": []byte("PEM")}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(secret).Build()
	config, err := SourceConfig(context.Background(), c, provider("https://x:6443"))
	if err != nil || config.Host != "https://x:6443" || config.BearerToken != "sekrit" || string(config.CAData) != "PEM" || config.Insecure {
		t.Fatalf("config %+v, %v", config, err)
	}
	for name, p := range map[string]*forkliftv1beta1.Provider{"host": provider(""), "no secret": func() *forkliftv1beta1.Provider {
		p := provider("https://x:6443")
		p.Spec.Secret.Name = "missing"
		return p
	}()} {
		_, err := SourceConfig(context.Background(), c, p)
		if err == nil || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: %v", name, err)
		}
	}
	insecure := secret.DeepCopy()
	insecure.Name = "insecure"
	insecure.Data["insecureSkipVerify"] = []byte("true")
	c = fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(insecure).Build()
	p := provider("https://x:6443")
	p.Spec.Secret.Name = "insecure"
	if config, err := SourceConfig(context.Background(), c, p); err != nil || !config.Insecure || config.CAData != nil {
		t.Errorf("insecureSkipVerify: %+v %v", config, err)
	}
}

// probeSource against a fake API server: what each answer becomes.
func TestProbeSource(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		reviewCode, listStatus int
		want                   ProbeOutcome
	}{
		{"ok", http.StatusCreated, http.StatusOK, ProbeOK},
		{"401", http.StatusUnauthorized, http.StatusUnauthorized, ProbeTokenInvalid},
		{"403 on the list", http.StatusCreated, http.StatusForbidden, ProbePermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				status := func(code int, reason string) {
					w.WriteHeader(code)
					_, _ = fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d}`, reason, code)
				}
				if tc.reviewCode == http.StatusUnauthorized {
					status(http.StatusUnauthorized, "Unauthorized") // every path, discovery included
					return
				}
				switch r.URL.Path {
				case "/api":
					_, _ = w.Write([]byte(`{"kind":"APIVersions","versions":["v1"]}`))
				case "/apis":
					_, _ = w.Write([]byte(`{"kind":"APIGroupList","apiVersion":"v1","groups":[
						{"name":"authentication.k8s.io","versions":[{"groupVersion":"authentication.k8s.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"authentication.k8s.io/v1","version":"v1"}},
						{"name":"kubevirt.io","versions":[{"groupVersion":"kubevirt.io/v1","version":"v1"}],"preferredVersion":{"groupVersion":"kubevirt.io/v1","version":"v1"}}]}`))
				case "/apis/authentication.k8s.io/v1":
					_, _ = w.Write([]byte(`{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"authentication.k8s.io/v1","resources":[{"name":"selfsubjectreviews","singularName":"selfsubjectreview","namespaced":false,"kind":"SelfSubjectReview","verbs":["create"]}]}`))
				case "/apis/kubevirt.io/v1":
					_, _ = w.Write([]byte(`{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"kubevirt.io/v1","resources":[{"name":"virtualmachines","singularName":"virtualmachine","namespaced":true,"kind":"VirtualMachine","verbs":["list"]}]}`))
				case "/apis/authentication.k8s.io/v1/selfsubjectreviews":
					w.WriteHeader(http.StatusCreated)
					_, _ = w.Write([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview","status":{"userInfo":{"username":"system:serviceaccount:openshift-mtv:cclm"}}}`))
				case "/apis/kubevirt.io/v1/virtualmachines":
					if tc.listStatus != http.StatusOK {
						status(tc.listStatus, "Forbidden")
						return
					}
					_, _ = w.Write([]byte(`{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineList","items":[]}`))
				default:
					status(http.StatusNotFound, "NotFound")
				}
			}))
			defer server.Close()
			got := probeSource(context.Background(), &rest.Config{Host: server.URL, BearerToken: "sekrit"})
			if got.Outcome != tc.want || strings.Contains(got.Message, "sekrit") || tc.want == ProbePermissionDenied && !strings.Contains(got.Message, "system:serviceaccount:openshift-mtv:cclm may not list") {
				t.Errorf("%+v, want %s", got, tc.want)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		got := probeSource(context.Background(), &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second})
		if got.Outcome != ProbeConnectionFailed {
			t.Errorf("%+v", got)
		}
	})
}

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachines"}
	for _, tc := range []struct {
		err    error
		want   ProbeOutcome
		failed bool
	}{
		{apierrors.NewUnauthorized("no"), ProbeTokenInvalid, true},
		{apierrors.NewForbidden(gr, "", errors.New("no")), ProbePermissionDenied, true},
		{apierrors.NewNotFound(gr, "x"), "", false},
	} {
		got, failed := classify("https://x", tc.err, "list")
		if failed != tc.failed || got.Outcome != tc.want {
			t.Errorf("%v: %+v %v", tc.err, got, failed)
		}
	}
}

// A source read refused for the token names the Provider and the fix
// (the Migration's reason after a token revoked mid-plan); other errors
// are said as they are.
func TestSourceReadError(t *testing.T) {
	gr := schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachines"}
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{fmt.Errorf("read VM src/vm1: %w", apierrors.NewUnauthorized("Unauthorized")),
			[]string{"read VM src/vm1: Unauthorized", "refused the token of Provider openshift-mtv/ocp7 (401 Unauthorized)", "cclm connect"}},
		{fmt.Errorf("read VMI src/vm1: %w", apierrors.NewForbidden(gr, "vm1", errors.New("no"))),
			[]string{"read VMI src/vm1: ", "the token of Provider openshift-mtv/ocp7 may not do this on the source (403 Forbidden)", "live-migration-role"}},
		{errors.New("read VM src/vm1: EOF"), []string{"read VM src/vm1: EOF"}},
	} {
		got := sourceReadError(tc.err, "openshift-mtv/ocp7")
		for _, want := range tc.want {
			if !strings.Contains(got, want) {
				t.Errorf("%v: %q lacks %q", tc.err, got, want)
			}
		}
		if !apierrors.IsUnauthorized(tc.err) && !apierrors.IsForbidden(tc.err) && got != tc.err.Error() {
			t.Errorf("%v: %q, want the error as it is", tc.err, got)
		}
	}
}

func readyPlan() *forkliftv1beta1.Plan {
	return &forkliftv1beta1.Plan{
		ObjectMeta: metav1.ObjectMeta{Name: "plan", Namespace: DefaultNamespace, UID: planUID, Generation: 1},
		Spec: forkliftv1beta1.PlanSpec{
			Type: forkliftv1beta1.MigrationLive, TargetNamespace: targetNamespace,
			Provider: forkliftv1beta1.ProviderPair{Source: corev1.ObjectReference{Name: "ocp7"}, Destination: corev1.ObjectReference{Name: "host"}},
			Map:      forkliftv1beta1.PlanMap{Network: corev1.ObjectReference{Name: "net"}, Storage: corev1.ObjectReference{Name: "storage"}},
			VMs:      []forkliftv1beta1.PlanVM{{Ref: forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace}}},
		},
	}
}

func planObserved(options ...func(*PlanObserved)) PlanObserved {
	source := provider("https://x:6443")
	source.Status = ProviderStatus(source, ProbeResult{Outcome: ProbeOK}, t0)
	host := provider("")
	host.Name = "host"
	obs := PlanObserved{
		Plan: readyPlan(), ToolkitNamespace: DefaultNamespace,
		Toolkit: &forkliftv1beta1.ForkliftController{ObjectMeta: metav1.ObjectMeta{Name: ForkliftControllerName, Namespace: DefaultNamespace},
			Spec: forkliftv1beta1.ForkliftControllerSpec{FeatureOCPLiveMigration: "true"}},
		Source: source, Destination: host,
		NetworkMap: &forkliftv1beta1.NetworkMap{}, StorageMap: &forkliftv1beta1.StorageMap{},
		Report: &preflight.Report{Checks: []preflight.Check{{ID: preflight.TokenValid, Status: preflight.Passed}}},
		Now:    t0,
	}
	for _, option := range options {
		option(&obs)
	}
	return obs
}

func TestPlanConditions(t *testing.T) {
	failing := &preflight.Report{Checks: []preflight.Check{
		{ID: preflight.FeatureGate, Side: preflight.Source, Status: preflight.Failed, Message: "gate off on ocp7", Fix: "turn it on"},
		{ID: preflight.FeatureGate, Side: preflight.Target, Status: preflight.Passed},
		{ID: preflight.VMRunning, VM: "src/a", Status: preflight.Failed, Message: "a is stopped", Fix: "start a"},
		{ID: preflight.VMRunning, VM: "src/b", Status: preflight.Failed, Message: "b is stopped", Fix: "start b"},
		{ID: preflight.CPUModel, VM: "src/a", Status: preflight.Skipped},
	}}
	for _, tc := range []struct {
		name     string
		obs      PlanObserved
		ready    string
		critical []string // condition types, in order
		says     string
	}{
		{"all passed: Ready", planObserved(), "True", nil, ""},
		{"the flag off", planObserved(func(o *PlanObserved) { o.Toolkit.Spec.FeatureOCPLiveMigration = "false" }), "False",
			[]string{ConditionToolkitEnabled}, `feature_ocp_live_migration "false"`},
		{"no ForkliftController", planObserved(func(o *PlanObserved) { o.Toolkit = nil }), "False", []string{ConditionToolkitEnabled}, "no ForkliftController in namespace openshift-mtv"},
		{"no source provider", planObserved(func(o *PlanObserved) { o.Source = nil }), "False", []string{ConditionSourceProviderNotValid}, "source Provider openshift-mtv/ocp7 does not exist"},
		{"a source provider not Ready", planObserved(func(o *PlanObserved) {
			o.Source.Status = ProviderStatus(o.Source, ProbeResult{Outcome: ProbeTokenInvalid, Message: "token refused"}, t0)
		}), "False", []string{ConditionSourceProviderNotValid}, "token refused"},
		{"a destination that is not the host", planObserved(func(o *PlanObserved) { o.Destination = provider("https://y") }), "False", []string{ConditionDestinationProviderNotValid}, "not the host cluster"},
		{"maps missing", planObserved(func(o *PlanObserved) { o.NetworkMap, o.StorageMap = nil, nil }), "False",
			[]string{ConditionNetworkMapNotValid, ConditionStorageMapNotValid}, "NetworkMap openshift-mtv/net does not exist"},
		{"failed checks: one condition per ID", planObserved(func(o *PlanObserved) { o.Report = failing }), "False",
			[]string{preflight.FeatureGate, preflight.VMRunning}, "a is stopped Fix: start a | b is stopped Fix: start b"},
		{"not run this time: the earlier failures stay", planObserved(func(o *PlanObserved) {
			o.Plan.Status.Conditions = preflightConditions(*failing, t0)
			o.Report = nil
		}), "False", []string{preflight.FeatureGate, preflight.VMRunning}, "gate off on ocp7 Fix: turn it on"},
		{"never run: not evaluated", planObserved(func(o *PlanObserved) { o.Report = nil }), "False", nil, ""},
		{"a VM with hooks: refused, not ignored", planObserved(func(o *PlanObserved) {
			o.Plan.Spec.VMs[0].Hooks = []forkliftv1beta1.HookRef{{Step: "PreHook", Hook: corev1.ObjectReference{Name: "backup"}}}
		}), "False", []string{ConditionHooksNotSupported}, "spec.vms[0] (src/vm1) names hooks (openshift-mtv/backup at PreHook): hooks run as Jobs, which cclm does not run"},
		{"Forklift's VM fields a live migration cannot honour: each named", planObserved(func(o *PlanObserved) {
			vm := &o.Plan.Spec.VMs[0]
			vm.TargetName, vm.PVCNameTemplate, vm.TargetPowerState = "renamed", "{{.TargetVmName}}-{{.SourcePVCName}}", forkliftv1beta1.TargetPowerStateOff
		}), "False", []string{ConditionVMFieldNotSupported}, "spec.vms[0] (src/vm1) sets pvcNameTemplate, targetName, targetPowerState: off"},
		{"Forklift's plan fields a live migration cannot honour: each named", planObserved(func(o *PlanObserved) {
			o.Plan.Spec.TargetAffinity = &corev1.Affinity{}
			o.Plan.Spec.PVCNameTemplate, o.Plan.Spec.TargetPowerState = "{{.VmName}}-{{.DiskIndex}}", forkliftv1beta1.TargetPowerStateOff
		}), "False", []string{ConditionPlanFieldNotSupported}, "spec sets targetAffinity, pvcNameTemplate, targetPowerState: off"},
		{"Forklift's plan fields without effect on a live plan, and those cclm honours: Ready", planObserved(func(o *PlanObserved) {
			spec := &o.Plan.Spec
			spec.PreserveStaticIPs, spec.MigrateSharedDisks, spec.SkipGuestConversion = true, ptr.To(true), true
			spec.ConvertorLabels, spec.TargetLabels, spec.TargetNodeSelector = map[string]string{"a": "b"}, map[string]string{"team": "x"}, map[string]string{"zone": "a"}
		}), "True", nil, ""},
		{"Forklift's VM fields cclm does as asked: Ready", planObserved(func(o *PlanObserved) {
			vm := &o.Plan.Spec.VMs[0]
			vm.TargetName, vm.TargetPowerState, vm.DeleteVmOnFailMigration = vm.Name, forkliftv1beta1.TargetPowerStateAuto, true
		}), "True", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conditions := PlanConditions(tc.obs)
			ready := forkliftv1beta1.FindCondition(conditions, forkliftv1beta1.ConditionReady)
			if ready == nil || ready.Status != tc.ready {
				t.Fatalf("Ready %+v, want %s (conditions %+v)", ready, tc.ready, conditions)
			}
			var critical []string
			all := ""
			for _, c := range conditions {
				if c.Category == forkliftv1beta1.CategoryCritical {
					critical = append(critical, c.Type)
					all += c.Message + "\n"
					if c.Status != "True" {
						t.Errorf("critical condition %s is %s", c.Type, c.Status)
					}
				}
			}
			if strings.Join(critical, ",") != strings.Join(tc.critical, ",") {
				t.Errorf("critical conditions %v, want %v", critical, tc.critical)
			}
			if !strings.Contains(all, tc.says) {
				t.Errorf("messages %q do not say %q", all, tc.says)
			}
		})
	}
	t.Run("items name the VMs", func(t *testing.T) {
		c := forkliftv1beta1.FindCondition(PlanConditions(planObserved(func(o *PlanObserved) { o.Report = failing })), preflight.VMRunning)
		if strings.Join(c.Items, ",") != "src/a,src/b" || c.Reason != ReasonPreflightFailed {
			t.Errorf("%+v", c)
		}
	})
	t.Run("executing mirrors the running Migration", func(t *testing.T) {
		running := forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "m"}, Status: forkliftv1beta1.MigrationStatus{Timed: forkliftv1beta1.Timed{Started: mtp(0)}}}
		conditions := PlanConditions(planObserved(func(o *PlanObserved) { o.Migrations = []forkliftv1beta1.Migration{running} }))
		if c := forkliftv1beta1.FindCondition(conditions, forkliftv1beta1.ConditionExecuting); c == nil || c.Status != "True" {
			t.Errorf("Executing %+v", c)
		}
		done := running
		done.Status.Conditions = []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionSucceeded, Status: "True", Message: "completed: src/vm1"}}
		conditions = PlanConditions(planObserved(func(o *PlanObserved) { o.Migrations = []forkliftv1beta1.Migration{done} }))
		if c := forkliftv1beta1.FindCondition(conditions, forkliftv1beta1.ConditionSucceeded); c == nil || !strings.Contains(c.Message, "Migration m") {
			t.Errorf("Succeeded %+v", c)
		}
		if Executing([]forkliftv1beta1.Migration{{}}) {
			t.Error("a Migration not yet started counts as executing: it would keep its plan from being evaluated")
		}
	})
}

func TestStartMigration(t *testing.T) {
	newMigration := func() *forkliftv1beta1.Migration {
		return &forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: DefaultNamespace, UID: migrationUID, CreationTimestamp: metav1.NewTime(t0)},
			Spec: forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: "plan"}}}
	}
	plan := func(ready string, reason string) *forkliftv1beta1.Plan {
		p := readyPlan()
		p.Status.ObservedGeneration = 1
		if ready != "" {
			p.Status.Conditions = []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionReady, Status: ready, Reason: reason}}
		}
		if ready == "False" {
			p.Status.Conditions = append(p.Status.Conditions, critical(preflight.VMRunning, ReasonPreflightFailed, "vm1 is stopped", t0))
		}
		return p
	}
	other := func(started bool, created time.Duration) forkliftv1beta1.Migration {
		m := forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "other", UID: "other", CreationTimestamp: metav1.NewTime(at(created))},
			Spec: forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: "plan"}}}
		if started {
			m.Status.Started = mtp(0)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		obs     StartObserved
		started bool
		failed  string
		requeue bool
	}{
		{"a Ready plan: starts with its VMs", StartObserved{Plan: plan("True", "Ready")}, true, "", true},
		{"no plan", StartObserved{}, false, "Plan openshift-mtv/plan does not exist", false},
		{"a plan found not Ready", StartObserved{Plan: plan("False", "NotReady")}, false, "VMRunning: vm1 is stopped", false},
		{"a plan not yet evaluated: waits", StartObserved{Plan: plan("", "")}, false, "", true},
		{"a plan not evaluated in time", StartObserved{Plan: plan("False", "NotEvaluated"), Now: at(DefaultPlanReadyTimeout)}, false, "was not evaluated within 2m0s", false},
		{"another Migration runs the plan", StartObserved{Plan: plan("True", "Ready"), Others: []forkliftv1beta1.Migration{other(true, time.Second)}}, false, "already executing Migration other", false},
		{"an older one waits too: it goes first", StartObserved{Plan: plan("True", "Ready"), Others: []forkliftv1beta1.Migration{other(false, -time.Second)}}, false, "already executing", false},
		{"a newer one waiting does not stop it", StartObserved{Plan: plan("True", "Ready"), Others: []forkliftv1beta1.Migration{other(false, time.Second)}}, true, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.Migration = newMigration()
			if tc.obs.Now.IsZero() {
				tc.obs.Now = t0
			}
			status, requeue := StartMigration(tc.obs)
			if started := status.Started != nil; started != tc.started {
				t.Errorf("started %v, want %v", started, tc.started)
			}
			if tc.started && (len(status.VMs) != 1 || len(status.VMs[0].Pipeline) != len(Steps) || status.VMs[0].Name != vmName) {
				t.Errorf("VMs %+v", status.VMs)
			}
			failed := forkliftv1beta1.FindCondition(status.Conditions, forkliftv1beta1.ConditionFailed)
			switch {
			case tc.failed == "" && failed != nil:
				t.Errorf("failed: %+v", failed)
			case tc.failed != "" && (failed == nil || !strings.Contains(failed.Message, tc.failed)):
				t.Errorf("failed %+v, want one saying %q", failed, tc.failed)
			}
			if (requeue > 0) != tc.requeue {
				t.Errorf("requeue %s", requeue)
			}
		})
	}
}

func TestAggregateMigration(t *testing.T) {
	vm := func(name, phase string) forkliftv1beta1.VMStatus {
		status := forkliftv1beta1.VMStatus{Ref: forkliftv1beta1.Ref{Name: name, Namespace: "ns"}, Phase: phase}
		if phase == VMPhaseCompleted || phase == VMFailed || phase == VMCanceled {
			status.Completed = mtp(0)
		}
		return status
	}
	ended := func(name, outcome string) forkliftv1beta1.VMStatus {
		status := vm(name, VMPhaseCompleted)
		status.Conditions = []forkliftv1beta1.Condition{outcomeCondition(outcome, "", nil, metav1.NewTime(t0))}
		return status
	}
	for _, tc := range []struct {
		name string
		vms  []forkliftv1beta1.VMStatus
		want string
		says string
	}{
		{"one still migrating", []forkliftv1beta1.VMStatus{ended("a", VMSucceeded), vm("b", PhaseWaitForStateTransfer)}, forkliftv1beta1.ConditionRunning, "1 of 2 VMs migrating"},
		{"all migrated", []forkliftv1beta1.VMStatus{ended("a", VMSucceeded), ended("b", VMSucceeded)}, forkliftv1beta1.ConditionSucceeded, "succeeded: ns/a, ns/b"},
		{"one failed", []forkliftv1beta1.VMStatus{ended("a", VMSucceeded), ended("b", VMFailed)}, forkliftv1beta1.ConditionFailed, "succeeded: ns/a; failed: ns/b"},
		{"one canceled", []forkliftv1beta1.VMStatus{ended("a", VMCanceled), ended("b", VMSucceeded)}, forkliftv1beta1.ConditionCanceled, "canceled: ns/a"},
		{"phase Completed is no success: a canceled VM", []forkliftv1beta1.VMStatus{ended("a", VMCanceled)}, forkliftv1beta1.ConditionCanceled, "canceled: ns/a"},
		{"an older cclm's final phases", []forkliftv1beta1.VMStatus{vm("a", VMFailed), vm("b", VMPhaseCompleted)}, forkliftv1beta1.ConditionFailed, "succeeded: ns/b; failed: ns/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := AggregateMigration(forkliftv1beta1.MigrationStatus{VMs: tc.vms, Conditions: []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionRunning, Status: "True"}}}, t0)
			c := forkliftv1beta1.FindCondition(status.Conditions, tc.want)
			if c == nil || c.Status != "True" || !strings.Contains(c.Message, tc.says) {
				t.Fatalf("conditions %+v, want %s saying %q", status.Conditions, tc.want, tc.says)
			}
			if ended := tc.want != forkliftv1beta1.ConditionRunning; ended != (status.Completed != nil) || ended && forkliftv1beta1.FindCondition(status.Conditions, forkliftv1beta1.ConditionRunning) != nil {
				t.Errorf("completed %v, conditions %+v", status.Completed, status.Conditions)
			}
		})
	}
}

func TestMapStatus(t *testing.T) {
	pair := forkliftv1beta1.ProviderPair{Source: corev1.ObjectReference{Name: "ocp7"}, Destination: corev1.ObjectReference{Name: "host"}}
	ready := MapStatus(forkliftv1beta1.MapStatus{}, 3, pair, DefaultNamespace, provider("https://x"), provider(""), t0)
	if c := forkliftv1beta1.FindCondition(ready.Conditions, forkliftv1beta1.ConditionReady); c == nil || c.Status != "True" || ready.ObservedGeneration != 3 {
		t.Errorf("with both providers: %+v", ready)
	}
	missing := MapStatus(ready, 3, pair, DefaultNamespace, nil, provider(""), t0.Add(time.Minute))
	c := forkliftv1beta1.FindCondition(missing.Conditions, ConditionSourceProviderNotValid)
	if c == nil || c.Category != forkliftv1beta1.CategoryCritical || !strings.Contains(c.Message, "openshift-mtv/ocp7 does not exist") {
		t.Errorf("without the source: %+v", missing.Conditions)
	}
	if r := forkliftv1beta1.FindCondition(missing.Conditions, forkliftv1beta1.ConditionReady); r.Status != "False" || !r.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("Ready %+v", r)
	}
}

func TestDone(t *testing.T) {
	plan := readyPlan()
	plan.Status.ObservedGeneration = plan.Generation
	succeeded := forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "m1", CreationTimestamp: metav1.NewTime(t0)},
		Status: forkliftv1beta1.MigrationStatus{Conditions: []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionSucceeded, Status: "True"}}}}
	failed := forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "m2", CreationTimestamp: metav1.NewTime(at(time.Minute))},
		Status: forkliftv1beta1.MigrationStatus{Conditions: []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionFailed, Status: "True"}}}}
	if !Done(plan, []forkliftv1beta1.Migration{succeeded}) {
		t.Error("a plan whose latest Migration succeeded is not done")
	}
	if Done(plan, []forkliftv1beta1.Migration{succeeded, failed}) {
		t.Error("a plan whose latest Migration failed is done")
	}
	plan.Generation++
	if Done(plan, []forkliftv1beta1.Migration{succeeded}) {
		t.Error("a plan changed since is done")
	}
	if Done(readyPlan(), nil) {
		t.Error("a plan never run is done")
	}
}
