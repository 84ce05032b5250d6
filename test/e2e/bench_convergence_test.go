package e2e

// BenchmarkConvergence migrates a guest that dirties memory about as fast
// as the migration link carries it, under each policy the source agent's
// early convergence decision knows: post-copy allowed, auto-converge only,
// neither. See docs/benchmarks.md.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/testenv"
)

var (
	benchConvergeDirty = flag.Float64("converge-dirty", 15,
		"BenchmarkConvergence: MiB/s the guest is asked to dirty (TCG may achieve less; the achieved rate is reported)")
	benchConvergeLink = flag.String("converge-link", "16Mi",
		"BenchmarkConvergence: bandwidthPerMigration")
)

// benchConvergePolicies are the cases: what the KubeVirt CR's migration
// configuration allows.
var benchConvergePolicies = []struct{ name, allows string }{
	{"post-copy", `"allowPostCopy":true,"allowAutoConverge":false`},
	{"auto-converge", `"allowPostCopy":false,"allowAutoConverge":true`},
	{"neither", `"allowPostCopy":false,"allowAutoConverge":false`},
}

type benchConvergeSample struct {
	policy, outcome, mode, reason string
	total, downtime               time.Duration
	passes                        int64
	achievedMiBps                 float64
}

func BenchmarkConvergence(b *testing.B) {
	testenv.RequireLab(b)
	l := benchLab(b)
	var samples []benchConvergeSample
	runs := 0 // every run gets a namespace of its own: a deleted one lingers
	for _, policy := range benchConvergePolicies {
		b.Run(policy.name, func(b *testing.B) {
			restore := l.SetMigrationConfig(b, benchCluster, fmt.Sprintf(`{"bandwidthPerMigration":%q,"progressTimeout":600,%s}`, *benchConvergeLink, policy.allows))
			defer restore()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				runs++
				spec := vmSpec{name: "converge", namespace: fmt.Sprintf("bench-converge-%s-%d", policy.name, runs)}
				l.createVM(b, benchCluster, spec)
				l.WaitGuestReady(b, benchCluster, spec.namespace, spec.name, 90*time.Second)
				l.startDirtying(b, benchCluster, spec, *benchConvergeDirty, *benchConvergeDirty/2)
				info, err := l.GuestInfo(b, benchCluster, spec.namespace, spec.name)
				benchMust(b, err)
				b.StartTimer()
				began := time.Now()
				name := l.migrate(b, benchCluster, spec.namespace, spec.name)
				vmim := l.WaitVMIMFinal(b, benchCluster, spec.namespace, name, 5*time.Minute)
				total := time.Since(began)
				b.StopTimer()
				samples = append(samples, benchConvergeOutcome(policy.name, vmim, total, info.Dirty.AchievedMiBps))
				l.MustKubectl(b, benchCluster, "", "delete", "namespace", spec.namespace, "--wait=false")
			}
		})
	}
	benchPrintConvergence(os.Stdout, samples)
	benchReportRSS(b, os.Stdout)
}

func benchConvergeOutcome(policy string, vmim *kubevirtv1.VirtualMachineInstanceMigration, total time.Duration, achieved float64) benchConvergeSample {
	sample := benchConvergeSample{policy: policy, outcome: string(vmim.Status.Phase), total: total, achievedMiBps: achieved}
	if state := vmim.Status.MigrationState; state != nil {
		sample.mode = string(state.Mode)
		if state.Progress != nil {
			sample.downtime = time.Duration(state.Progress.DowntimeMs) * time.Millisecond
			sample.passes = state.Progress.Iteration
		}
	}
	sample.reason = vmim.FailureMessage()
	return sample
}

func benchPrintConvergence(out *os.File, samples []benchConvergeSample) {
	fmt.Fprintf(out, "\nConvergence: 128 MiB guest asked to dirty %g MiB/s over %d MiB, bandwidthPerMigration %s\n\n", *benchConvergeDirty, *benchDirtyWorkingSet, *benchConvergeLink)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "| policy allows\t| outcome\t| mode\t| total\t| downtime\t| passes\t| achieved dirty\t|")
	fmt.Fprintln(w, "|---\t|---\t|---\t|---\t|---\t|---\t|---\t|")
	for _, s := range samples {
		downtime := "—"
		if s.outcome == string(kubevirtv1.MigrationSucceeded) {
			downtime = s.downtime.String()
		}
		fmt.Fprintf(w, "| %s\t| %s\t| %s\t| %s\t| %s\t| %d\t| %.1f MiB/s\t|\n", s.policy, s.outcome, s.mode, s.total.Round(100*time.Millisecond), downtime, s.passes, s.achievedMiBps)
	}
	w.Flush()
	for _, s := range samples {
		if s.reason != "" {
			fmt.Fprintf(out, "\n%s: %s\n", s.policy, s.reason)
		}
	}
}

// benchReportRSS prints the resident memory of every lab process: API
// servers, etcd, controller managers, cclm's components, QEMUs.
func benchReportRSS(tb testing.TB, out *os.File) {
	type process struct {
		what string
		rss  int64 // KiB
	}
	var processes []process
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range pids {
		what := benchProcessKind(dir)
		if what == "" {
			continue
		}
		if rss := benchRSSKiB(dir); rss > 0 {
			processes = append(processes, process{what, rss})
		}
	}
	if len(processes) == 0 {
		tb.Log("no lab processes found for the RSS report")
		return
	}
	byKind := map[string][]int64{}
	for _, p := range processes {
		byKind[p.what] = append(byKind[p.what], p.rss)
	}
	kinds := make([]string, 0, len(byKind))
	for kind := range byKind {
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	fmt.Fprintf(out, "\nResident memory of the lab's processes\n\n")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "| process\t| count\t| RSS each (MiB)\t| total (MiB)\t|")
	fmt.Fprintln(w, "|---\t|---\t|---\t|---\t|")
	var all int64
	for _, kind := range kinds {
		sizes := byKind[kind]
		slices.Sort(sizes)
		var sum int64
		each := make([]string, len(sizes))
		for i, kib := range sizes {
			sum += kib
			each[i] = strconv.FormatInt(kib>>10, 10)
		}
		all += sum
		fmt.Fprintf(w, "| %s\t| %d\t| %s\t| %d\t|\n", kind, len(sizes), strings.Join(each, ", "), sum>>10)
	}
	fmt.Fprintf(w, "| all\t| %d\t| \t| %d\t|\n", len(processes), all>>10)
	w.Flush()
}

// benchProcessKind names a lab process by its command line, "" for others.
func benchProcessKind(procDir string) string {
	raw, err := os.ReadFile(filepath.Join(procDir, "cmdline"))
	if err != nil || len(raw) == 0 {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	base := filepath.Base(args[0])
	switch base {
	case "kube-apiserver", "etcd", "kube-controller-manager", "qemu-system-x86_64":
		return base
	case "cclm":
		if len(args) > 1 {
			return "cclm " + args[1]
		}
		return "cclm"
	}
	return ""
}

// benchRSSKiB is a process's VmRSS in KiB, 0 if unknown.
func benchRSSKiB(procDir string) int64 {
	raw, err := os.ReadFile(filepath.Join(procDir, "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}
