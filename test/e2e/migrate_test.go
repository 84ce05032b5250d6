package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// migrateOutput is `cclm migrate -o json`'s document.
type migrateOutput struct {
	Source, Target, Plan, Migration, Result, Error string
	Problems                                       []struct{ Type, Category, Reason, Message string }
	VMs                                            []struct {
		Name, Namespace, Result string
		Started, Completed      *time.Time
		DurationSeconds         float64
		DowntimeMs              *int64
		Bytes                   int64
		Error                   string
	}
}

func (l *labEnv) runMigrate(t *testing.T, namespace string, vms ...string) (migrateOutput, string, error) {
	t.Helper()
	return l.runMigrateBetween(t, sourceCluster, targetCluster, namespace, vms...)
}

// runMigrateBetween runs `cclm migrate VM... --source SOURCE --target
// TARGET -n NAMESPACE -o json`.
func (l *labEnv) runMigrateBetween(t *testing.T, source, target, namespace string, vms ...string) (migrateOutput, string, error) {
	t.Helper()
	args := append([]string{"migrate"}, vms...)
	args = append(args, "--source", source, "--target", target, "-n", namespace, "--kubeconfig", l.Kubeconfig, "-o", "json")
	stdout, stderr, err := labtest.RunCCLM(t, 8*time.Minute, args...)
	var doc migrateOutput
	if jerr := json.Unmarshal([]byte(stdout), &doc); jerr != nil {
		t.Fatalf("cclm migrate -o json: stdout is not one JSON document (%v); exit %v\nstdout:\n%s\nstderr:\n%s", jerr, err, stdout, stderr)
	}
	return doc, stderr, err
}

// `cclm migrate` end to end on the lab, after `cclm connect`: a running VM
// with a written disk moves from ocp7 to ocp1 through the toolkit's Plan
// and Migration; the command exits 0 and its JSON says Succeeded with the
// downtime; the guest did not reboot and its disk is intact on ocp1. A
// second migrate of the same VM, now halted on ocp7, is refused by the
// Plan's preflight, and the command says why.
func TestMigrateCommand(t *testing.T) {
	l := sharedLab(t)
	l.runConnect(t)
	spec := vmSpec{name: "mover", namespace: "cclm-migrate", memory: "128Mi", dataDisk: "256Mi"}
	l.createVM(t, sourceCluster, spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	l.EnsureNamespace(t, targetCluster, spec.namespace)
	before := l.WaitGuestReady(t, sourceCluster, spec.namespace, spec.name, 90*time.Second)
	var written guestagent.DiskWriteResult
	l.GuestCall(t, sourceCluster, spec.namespace, spec.name, guestagent.CmdDiskWrite, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 64}, &written)
	labtest.WaitFor(t, "the source VMI to report its NIC", 30*time.Second, func() (bool, string) {
		vmi := l.VMI(t, sourceCluster, spec.namespace, spec.name)
		return vmiShowsRunningGuest(vmi), vmiPhase(vmi)
	})

	began := time.Now()
	doc, stderr, err := l.runMigrate(t, spec.namespace, spec.name)
	if err != nil {
		t.Fatalf("cclm migrate: %v\n%+v\nstderr:\n%s\nocp1:\n%s", err, doc, stderr, l.Describe(t, targetCluster, spec.namespace))
	}
	t.Logf("cclm migrate took %s; progress it printed:\n%s", time.Since(began).Round(100*time.Millisecond), stderr)
	if doc.Result != "Succeeded" || len(doc.VMs) != 1 {
		t.Fatalf("result %s: %+v", doc.Result, doc)
	}
	vm := doc.VMs[0]
	if vm.Name != spec.name || vm.Namespace != spec.namespace || vm.Result != "Succeeded" || vm.Error != "" {
		t.Fatalf("VM result: %+v", vm)
	}
	if vm.DowntimeMs == nil || vm.Bytes <= 0 || vm.Started == nil || vm.Completed == nil || vm.DurationSeconds <= 0 {
		t.Fatalf("VM result lacks its figures (downtime, bytes, timings): %+v", vm)
	}
	t.Logf("%s: %.1f s, downtime %d ms, %d bytes", vm.Name, vm.DurationSeconds, *vm.DowntimeMs, vm.Bytes)
	if !strings.Contains(stderr, "Migrate (12/13)") && !strings.Contains(stderr, spec.namespace+"/"+spec.name+": Succeeded") {
		t.Fatalf("no progress on stderr:\n%s", stderr)
	}

	after := l.WaitGuestReady(t, targetCluster, spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.BootID, after.BootID)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, targetCluster, spec.namespace, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 64}, &verified)
	if !verified.OK || verified.Digest != written.Digest {
		t.Fatalf("the data disk on ocp1: %+v; written on ocp7 with digest %s", verified, written.Digest)
	}
	labtest.WaitFor(t, "the source VM to be Halted", time.Minute, func() (bool, string) {
		var v kubevirtv1.VirtualMachine
		if err := l.Client(t, sourceCluster).Get(context.Background(), client.ObjectKey{Namespace: spec.namespace, Name: spec.name}, &v); err != nil {
			return false, err.Error()
		}
		return v.EffectiveRunStrategy() == kubevirtv1.RunStrategyHalted, fmt.Sprintf("runStrategy %s", v.EffectiveRunStrategy())
	})
	if pids := labtest.QEMUPids(spec.namespace, spec.name); len(pids) != 1 {
		t.Fatalf("want exactly one QEMU of the VM (on ocp1), found %v", pids)
	}

	// Again: the VM is halted on ocp7 now; the Plan is not Ready, nothing
	// migrates, and the command exits non-zero with the reason.
	again, stderr, err := l.runMigrate(t, spec.namespace, spec.name)
	if err == nil || again.Result != "PlanNotReady" || len(again.Problems) == 0 {
		t.Fatalf("migrating a halted VM must be refused by the plan: exit %v, %+v\n%s", err, again, stderr)
	}
	var types []string
	for _, p := range again.Problems {
		types = append(types, p.Type)
	}
	if !strings.Contains(strings.Join(types, ","), "VMRunning") {
		t.Fatalf("want a VMRunning problem, got %v", again.Problems)
	}
	if again.Migration != "" {
		t.Fatalf("a Migration was created for a plan that is not Ready: %s", again.Migration)
	}
}

// `cclm migrate` interrupted mid-transfer, without a terminal, cancels at
// once: it exits non-zero and its JSON says Canceled; the Migration's VM
// ends as Forklift's do (phase Completed, condition Canceled), and so does
// the Migration; the guest runs on at ocp7 as before, and nothing is left
// of it on ocp1.
func TestMigrateCommandCanceled(t *testing.T) {
	l := sharedLab(t)
	spec, before, restore := l.guestOnASlowLink(t, "stayer", "cclm-migrate-cancel", "8Mi")
	defer restore()

	// Detached mid-transfer, the migration is canceled by `cclm cancel`
	// (the Ctrl-C of a migrate without a terminal writes the same
	// spec.cancel; TestFollow covers that path), and `migrate --attach`
	// then reports it Canceled and exits non-zero.
	detached, progress, err := l.migrateUntilTransfer(t, spec, syscall.SIGTERM)
	if err == nil || detached.Plan == "" || detached.Migration == "" {
		t.Fatalf("a migrate sent SIGTERM: exit %v, %+v\nstderr:\n%s", err, detached, progress)
	}
	_, planName, _ := strings.Cut(detached.Plan, "/")
	canceled, stderr, err := l.cclmOnTarget(t, "cancel", planName)
	if err != nil || !strings.Contains(canceled, "cancel requested for "+spec.namespace+"/"+spec.name) {
		t.Fatalf("cclm cancel %s: %v\n%s%s", planName, err, canceled, stderr)
	}
	attached, stderr, err := labtest.RunCCLM(t, 5*time.Minute, "migrate", "--attach", detached.Migration, "--source", sourceCluster, "--target", targetCluster,
		"--kubeconfig", l.Kubeconfig, "-o", "json")
	var doc migrateOutput
	if jerr := json.Unmarshal([]byte(attached), &doc); jerr != nil || err == nil || doc.Result != "Canceled" || len(doc.VMs) != 1 || doc.VMs[0].Result != "Canceled" {
		t.Fatalf("following a canceled migration: exit %v, %+v (%v); want a non-zero exit and Canceled\nstderr:\n%s", err, doc, jerr, stderr)
	}

	var m forkliftv1beta1.Migration
	namespace, name, _ := strings.Cut(doc.Migration, "/") // as -o json names it
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &m); err != nil {
		t.Fatal(err)
	}
	if c := forkliftv1beta1.FindCondition(m.Status.Conditions, forkliftv1beta1.ConditionCanceled); c == nil || c.Status != forkliftv1beta1.ConditionTrue {
		t.Errorf("Migration %s: conditions %+v, want Canceled", m.Name, m.Status.Conditions)
	}
	if len(m.Status.VMs) != 1 || m.Status.VMs[0].Phase != toolkit.VMPhaseCompleted || toolkit.VMOutcome(m.Status.VMs[0]) != toolkit.VMCanceled {
		t.Errorf("Migration %s's VM: %+v, want phase Completed with condition Canceled", m.Name, m.Status.VMs)
	}
	after := l.WaitGuestReady(t, sourceCluster, spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted on ocp7: %s -> %s", before.BootID, after.BootID)
	}
	var left kubevirtv1.VirtualMachine
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: spec.namespace, Name: spec.name}, &left); !apierrors.IsNotFound(err) {
		t.Errorf("the receiving VM is still on ocp1 after the cancel (%v)", err)
	}
	if pids := labtest.QEMUPids(spec.namespace, spec.name); len(pids) != 1 {
		t.Fatalf("want exactly one QEMU of the VM (on ocp7), found %v", pids)
	}
}

// guestOnASlowLink readies `cclm migrate` of a new guest on ocp7 (after
// `cclm connect`), with ocp7's migrations limited to link so that the
// transfer lasts long enough to signal the command in; restore undoes the
// limit.
func (l *labEnv) guestOnASlowLink(t *testing.T, name, namespace, link string) (spec vmSpec, booted *guestagent.Info, restore func()) {
	t.Helper()
	l.runConnect(t)
	restore = l.SetMigrationConfig(t, sourceCluster, fmt.Sprintf(`{"bandwidthPerMigration":%q}`, link))
	spec = vmSpec{name: name, namespace: namespace, memory: "128Mi"}
	l.createVM(t, sourceCluster, spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	l.EnsureNamespace(t, targetCluster, spec.namespace)
	return spec, l.WaitGuestReady(t, sourceCluster, spec.namespace, spec.name, 90*time.Second), restore
}

// migrateUntilTransfer runs `cclm migrate -o json` of spec's VM without a
// terminal and sends it sig once its progress shows bytes moving; it
// returns the JSON document, what it printed on stderr and its exit.
func (l *labEnv) migrateUntilTransfer(t *testing.T, spec vmSpec, sig os.Signal) (migrateOutput, string, error) {
	t.Helper()
	cmd := exec.Command(labtest.CCLM(t), "migrate", spec.name, "--source", sourceCluster, "--target", targetCluster,
		"-n", spec.namespace, "--kubeconfig", l.Kubeconfig, "-o", "json")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ended struct {
		progress string
		err      error
	}
	exited := make(chan ended, 1)
	go func() {
		var progress strings.Builder
		scanner := bufio.NewScanner(stderr)
		signaled := false
		for scanner.Scan() {
			progress.WriteString(scanner.Text() + "\n")
			// "ns/vm: Migrate (12/13): 12.0 MiB of 128.0 MiB, ..."
			if !signaled && strings.Contains(scanner.Text(), "Migrate (") && strings.Contains(scanner.Text(), " MiB of ") {
				signaled = true
				_ = cmd.Process.Signal(sig)
			}
		}
		exited <- ended{progress.String(), cmd.Wait()}
	}()
	var end ended
	select {
	case end = <-exited:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		end = <-exited
		t.Fatalf("cclm migrate did not end within 5 minutes (%v):\n%s", sig, end.progress)
	}
	var doc migrateOutput
	if jerr := json.Unmarshal(stdout.Bytes(), &doc); jerr != nil {
		t.Fatalf("stdout is not one JSON document (%v):\n%s\nstderr:\n%s", jerr, stdout.String(), end.progress)
	}
	return doc, end.progress, end.err
}

// `cclm migrate` sent SIGTERM mid-transfer (a CI job's timeout) detaches:
// it exits non-zero, says how to follow the migration again, and the
// migration goes on; `cclm migrate --attach` then follows it to its end
// and exits 0 with Succeeded, and the guest runs on ocp1 without a reboot.
func TestMigrateCommandDetachesAndAttaches(t *testing.T) {
	l := sharedLab(t)
	spec, before, restore := l.guestOnASlowLink(t, "detacher", "cclm-migrate-detach", "16Mi")
	defer restore()

	doc, progress, err := l.migrateUntilTransfer(t, spec, syscall.SIGTERM)
	if err == nil || doc.Migration == "" || !strings.Contains(doc.Error, "cclm migrate --attach "+doc.Migration) {
		t.Fatalf("a migrate sent SIGTERM: exit %v, %+v; want a non-zero exit naming `cclm migrate --attach %s`\nstderr:\n%s", err, doc, doc.Migration, progress)
	}
	_, planName, _ := strings.Cut(doc.Plan, "/")
	_, migrationName, _ := strings.Cut(doc.Migration, "/")
	l.assertPlanListedAndDescribed(t, planName, migrationName, spec)

	attached, stderr, err := labtest.RunCCLM(t, 8*time.Minute, "migrate", "--attach", doc.Migration, "--source", sourceCluster, "--target", targetCluster,
		"--kubeconfig", l.Kubeconfig, "-o", "json")
	var result migrateOutput
	if jerr := json.Unmarshal([]byte(attached), &result); jerr != nil || err != nil || result.Result != "Succeeded" || len(result.VMs) != 1 || result.VMs[0].Result != "Succeeded" {
		t.Fatalf("cclm migrate --attach %s: exit %v, %+v (%v)\nstderr:\n%s", doc.Migration, err, result, jerr, stderr)
	}
	described, _, err := l.cclmOnTarget(t, "describe", "plan", planName)
	if err != nil || !strings.Contains(described, spec.namespace+"/"+spec.name+": Succeeded") || !strings.Contains(described, "downtime ") {
		t.Errorf("cclm describe plan %s after the migration: %v\n%s", planName, err, described)
	}
	t.Logf("cclm describe plan %s:\n%s", planName, described)
	after := l.WaitGuestReady(t, targetCluster, spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.BootID, after.BootID)
	}
	if pids := labtest.QEMUPids(spec.namespace, spec.name); len(pids) != 1 {
		t.Fatalf("want exactly one QEMU of the VM (on ocp1), found %v", pids)
	}
}

// cclmOnTarget runs a cclm command that works on the toolkit's cluster
// (get, describe, cancel), with kubectl's connection flags.
func (l *labEnv) cclmOnTarget(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return labtest.RunCCLM(t, time.Minute, append(args, "--context", targetCluster, "--kubeconfig", l.Kubeconfig)...)
}

// assertPlanListedAndDescribed checks `cclm get` and `cclm describe` on a
// Plan whose one VM, spec's, is migrating: the row, kubectl's output
// formats, and the VM's pipeline.
func (l *labEnv) assertPlanListedAndDescribed(t *testing.T, planName, migrationName string, spec vmSpec) {
	t.Helper()
	wide, stderr, err := l.cclmOnTarget(t, "get", "plans", "-o", "wide")
	row := ""
	for _, line := range strings.Split(wide, "\n") {
		if strings.HasPrefix(line, planName+" ") {
			row = line
		}
	}
	// NAME READY EXECUTING [SUCCEEDED FAILED] VMS AGE SOURCE TARGET-NAMESPACE STATES...
	if fields := strings.Fields(row); err != nil || len(fields) < 8 || fields[1] != "True" || !slices.Contains(fields, sourceCluster) ||
		!slices.Contains(fields, spec.namespace) || !strings.HasPrefix(fields[len(fields)-2], "1") {
		t.Errorf("cclm get plans -o wide: %v, row %q:\n%s%s", err, row, wide, stderr)
	}
	names, _, err := l.cclmOnTarget(t, "get", "plans", planName, "-o", "name")
	if err != nil || strings.TrimSpace(names) != "plan.forklift.konveyor.io/"+planName {
		t.Errorf("cclm get plans %s -o name: %v, %q", planName, err, names)
	}
	ofPlan, _, err := l.cclmOnTarget(t, "get", "migration", migrationName, "-o", "jsonpath={.spec.plan.name} {.status.vms[0].name}")
	if err != nil || ofPlan != planName+" "+spec.name {
		t.Errorf("cclm get migration %s -o jsonpath: %v, %q", migrationName, err, ofPlan)
	}
	described, stderr, err := l.cclmOnTarget(t, "describe", "plan", planName)
	for _, want := range []string{"Type:", "live", "Migrations:", migrationName, spec.namespace + "/" + spec.name + ": ", "SynchronizeCertificates", "Migrate "} {
		if err != nil || !strings.Contains(described, want) {
			t.Errorf("cclm describe plan %s lacks %q (%v):\n%s%s", planName, want, err, described, stderr)
			break
		}
	}
}
