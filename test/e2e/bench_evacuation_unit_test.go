package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The evacuation benchmark's report without a lab: the table, the aims
// and a PNG chart from made-up rows.
func TestEvacuationReport(t *testing.T) {
	rows := []evacuationRow{
		{parallel: 1, vms: 1, total: 10 * time.Second, bytes: 200 << 20, downtimesMs: []int64{30}},
		{parallel: 1, vms: 4, total: 40 * time.Second, bytes: 800 << 20, downtimesMs: []int64{30, 40, 35, 50}},
		{parallel: 4, vms: 1, total: 10 * time.Second, bytes: 200 << 20, downtimesMs: []int64{30}},
		{parallel: 4, vms: 4, total: 20 * time.Second, bytes: 800 << 20, downtimesMs: []int64{30, 40, 35, 50}},
	}
	var out bytes.Buffer
	printEvacuation(&out, rows)
	for _, want := range []string{"20.0 s", "40.0", "parallel 4: throughput at N=4 is 2.00× N=1's", "parallel 1: throughput at N=4 is 1.00× N=1's"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if got := percentile([]int64{50, 30, 40, 35}, 50); got != 35 {
		t.Errorf("median %d, want 35", got)
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := chartEvacuation(path, rows); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("chart %s: %d bytes, %v", path, len(data), err)
	}
}
