package e2e

// BenchmarkEvacuation moves N guests from ocp7 to ocp1 in one Plan, for
// several N and parallel limits, through the toolkit. See
// docs/benchmarks.md, "Evacuating a cluster".

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/test/labtest"
)

var (
	evacuationSizes = flag.String("evacuation-sizes", "1,2,4,8",
		"BenchmarkEvacuation: comma-separated numbers of VMs in the Plan")
	evacuationParallel = flag.String("evacuation-parallel", "1,4",
		"BenchmarkEvacuation: comma-separated parallel limits; each sets parallelMigrationsPerCluster and parallelOutboundMigrationsPerNode on both clusters")
	evacuationChart = flag.String("evacuation-chart", "",
		"BenchmarkEvacuation: where to write the chart (PNG) of the Plan's total time against N; default: cclm-evacuation.png in the temporary directory")
)

// evacuationRow is one Plan's measurement.
type evacuationRow struct {
	parallel, vms int
	total         time.Duration
	bytes         int64
	downtimesMs   []int64
	peak          int     // migrations holding a slot on ocp7 at once, at most
	cpu           float64 // host CPU busy over the Plan, % of all cores
}

func (r evacuationRow) throughput() float64 {
	return float64(r.bytes) / (1 << 20) / r.total.Seconds()
}

// BenchmarkEvacuation: for each parallel limit P and size N, N idle
// 128 MiB guests, each with a written 64 MiB data disk, move from ocp7 to
// ocp1 in one live Plan (the toolkit's in-flight limit left at its 20).
// The Plan's total time runs from creating its Migration to seeing it
// Succeeded; the bytes are each VM's Migrate task's; the peak is counted
// by a watch on ocp7's VMIMs; the CPU from /proc/stat. Every guest's
// boot and disk are checked on arrival (assertArrivedOnce), and the
// guests are deleted before the next Plan so that idle guests do not load
// the next measurement.
func BenchmarkEvacuation(b *testing.B) {
	testenv.RequireLab(b)
	sizes, err := parseInts(*evacuationSizes)
	if err != nil {
		b.Fatalf("-evacuation-sizes: %v", err)
	}
	parallels, err := parseInts(*evacuationParallel)
	if err != nil {
		b.Fatalf("-evacuation-parallel: %v", err)
	}
	l := benchLab(b)
	l.connectByHand(b)
	var rows []evacuationRow
	for range b.N {
		rows = rows[:0]
		for _, p := range parallels {
			config := fmt.Sprintf(`{"bandwidthPerMigration":"0","parallelMigrationsPerCluster":%d,"parallelOutboundMigrationsPerNode":%d}`, p, p)
			restoreSource, restoreTarget := l.SetMigrationConfig(b, sourceCluster, config), l.SetMigrationConfig(b, targetCluster, config)
			for _, n := range sizes {
				rows = append(rows, l.evacuate(b, p, n))
			}
			restoreSource()
			restoreTarget()
		}
	}
	printEvacuation(os.Stdout, rows)
	path := cmp.Or(*evacuationChart, os.TempDir()+"/cclm-evacuation.png")
	if err := chartEvacuation(path, rows); err != nil {
		b.Errorf("chart: %v", err)
	} else {
		fmt.Printf("chart: %s\n", path)
	}
}

// evacuate measures one Plan of n guests at parallel limit p.
func (l *labEnv) evacuate(b *testing.B, p, n int) evacuationRow {
	b.Helper()
	namespace := fmt.Sprintf("evac-p%d-n%d", p, n)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("evac-%d", i))
	}
	guests := l.newGuests(b, namespace, names...)
	plan := l.applyPlan(b, namespace, namespace, guests)
	ctx, stop := context.WithCancel(context.Background())
	slots := l.recordSlots(b, ctx, sourceCluster, namespace, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) string { return s.SourceNode })
	busy0, all0 := hostCPU(b)
	began := time.Now()
	m := l.awaitMigration(b, l.startToolkitMigration(b, plan, namespace+"-1"), 15*time.Minute, nil)
	row := evacuationRow{parallel: p, vms: n, total: time.Since(began)}
	busy1, all1 := hostCPU(b)
	stop()
	row.cpu = 100 * float64(busy1-busy0) / float64(max(all1-all0, 1))
	row.peak = slots.peak()
	for _, vm := range m.Status.VMs {
		migrate := toolkit.FindVMTask(vm, toolkit.TaskMigrate)
		row.bytes += migrate.Progress.Completed
		if ms, err := strconv.ParseInt(migrate.Annotations[toolkit.AnnotationDowntime], 10, 64); err == nil {
			row.downtimesMs = append(row.downtimesMs, ms)
		}
	}
	for _, g := range guests {
		l.assertArrivedOnce(b, m, namespace, g)
	}
	b.Logf("P=%d N=%d: %s, %.1f MiB/s, downtimes %v ms, peak %d, CPU %.0f%%", p, n, row.total.Round(100*time.Millisecond), row.throughput(), row.downtimesMs, row.peak, row.cpu)
	l.deleteGuests(b, namespace)
	return row
}

// deleteGuests deletes the namespace's VMs on both clusters and waits for
// their QEMUs to end.
func (l *labEnv) deleteGuests(t testing.TB, namespace string) {
	t.Helper()
	for _, cluster := range []string{sourceCluster, targetCluster} {
		l.MustKubectl(t, cluster, "", "delete", "vm", "--all", "-n", namespace, "--wait=false")
	}
	labtest.WaitFor(t, "the QEMUs of namespace "+namespace+" to end", 2*time.Minute, func() (bool, string) {
		var left []string
		for _, line := range labtest.ProcessesMentioning("guest=" + namespace + "_") {
			if strings.Contains(line, "qemu-system") {
				left = append(left, strings.SplitN(line, ":", 2)[0])
			}
		}
		return len(left) == 0, fmt.Sprintf("QEMU pids %v", left)
	})
}

// hostCPU is the host's busy and total CPU time (all cores, in clock
// ticks) from /proc/stat.
func hostCPU(t testing.TB) (busy, total int64) {
	t.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
	for i, field := range fields {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %v", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func parseInts(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// printEvacuation prints the table, then the aims against it.
func printEvacuation(out io.Writer, rows []evacuationRow) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "parallel\tVMs\tPlan total\tthroughput MiB/s\tdowntime median ms\tdowntime max ms\tpeak in flight\thost CPU %\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%d\t%.1f s\t%.1f\t%d\t%d\t%d\t%.0f\t\n", r.parallel, r.vms, r.total.Seconds(), r.throughput(),
			percentile(r.downtimesMs, 50), percentile(r.downtimesMs, 100), r.peak, r.cpu)
	}
	w.Flush()
	find := func(p, n int) *evacuationRow {
		for i := range rows {
			if rows[i].parallel == p && rows[i].vms == n {
				return &rows[i]
			}
		}
		return nil
	}
	for _, p := range []int{1, 4} {
		one, four, eight := find(p, 1), find(p, 4), find(p, 8)
		if one == nil {
			continue
		}
		if four != nil {
			fmt.Fprintf(out, "parallel %d: throughput at N=4 is %.2f× N=1's (aim at parallel 4: at least 1.8×)\n", p, four.throughput()/one.throughput())
		}
		if eight != nil {
			fmt.Fprintf(out, "parallel %d: 8 VMs took %.2f× one VM's time (aim: well under 8×); max downtime %d ms, %.2f× the single VM's (aim: at most 2×)\n",
				p, eight.total.Seconds()/one.total.Seconds(), percentile(eight.downtimesMs, 100),
				float64(percentile(eight.downtimesMs, 100))/float64(max(percentile(one.downtimesMs, 50), 1)))
		}
	}
}

// percentile is the p-th percentile (nearest rank) of values, 0 for none.
func percentile(values []int64, p int) int64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(values))
	rank := max((p*len(sorted)+99)/100, 1)
	return sorted[rank-1]
}

// chartEvacuation draws the Plan's total time against N, a line per
// parallel limit.
func chartEvacuation(path string, rows []evacuationRow) error {
	p := plot.New()
	p.Title.Text = "Evacuating ocp7 to ocp1 through one Plan"
	p.X.Label.Text = "VMs in the Plan (N)"
	p.Y.Label.Text = "Plan total time (s)"
	var lines []any
	for _, parallel := range slices.Compact(slices.Sorted(func(yield func(int) bool) {
		for _, r := range rows {
			if !yield(r.parallel) {
				return
			}
		}
	})) {
		var points plotter.XYs
		for _, r := range rows {
			if r.parallel == parallel {
				points = append(points, plotter.XY{X: float64(r.vms), Y: r.total.Seconds()})
			}
		}
		lines = append(lines, fmt.Sprintf("parallel limit %d", parallel), points)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(6*vg.Inch, 4*vg.Inch, path)
}
