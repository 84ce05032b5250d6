package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/preflight"
)

func TestPrintReport(t *testing.T) {
	report := preflight.Report{Checks: []preflight.Check{
		{ID: "FeatureGate", Side: preflight.Source, Status: preflight.Passed, Message: "DecentralizedLiveMigration is on"},
		{ID: "VMRunning", Side: preflight.Source, VM: "default/demo-vm", Status: preflight.Failed, Message: "the VM is\nstopped", Fix: "start it: virtctl start demo-vm"},
		{ID: "CPUModel", Side: preflight.Target, VM: "default/demo-vm", Status: preflight.Skipped, Message: "needs a running VM"},
	}}
	var out bytes.Buffer
	printReport(&out, report)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header, 3 checks and a summary:\n%s", out.String())
	}
	for _, col := range []string{"CHECK", "SIDE", "VM", "STATUS", "MESSAGE", "FIX"} {
		if !strings.Contains(lines[0], col) {
			t.Fatalf("header lacks %s: %q", col, lines[0])
		}
	}
	if !strings.Contains(lines[2], "the VM is stopped") || !strings.Contains(lines[2], "start it: virtctl start demo-vm") {
		t.Fatalf("a failed check shows its message on one line and its fix: %q", lines[2])
	}
	if !strings.Contains(lines[1], " - ") {
		t.Fatalf("empty cells show -: %q", lines[1])
	}
	if lines[4] != "3 checks: 1 passed, 1 failed, 1 skipped" {
		t.Fatalf("summary: %q", lines[4])
	}
	doc, _ := json.Marshal(toPreflightJSON(report))
	if !strings.Contains(string(doc), `"ok":false`) || !strings.Contains(string(doc), `"id":"VMRunning"`) {
		t.Fatalf("json: %s", doc)
	}
	doc, _ = json.Marshal(toPreflightJSON(preflight.Report{}))
	if string(doc) != `{"ok":true,"checks":[]}` {
		t.Fatalf("json of no checks: %s", doc)
	}
}

func TestLabDirOf(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := labDirOf(kubeconfig); got != "" {
		t.Fatalf("no state.json: not a lab, got %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := labDirOf(kubeconfig); got != dir {
		t.Fatalf("got %q, want %q", got, dir)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	if got := labDirOf(""); got != dir {
		t.Fatalf("from $KUBECONFIG: got %q, want %q", got, dir)
	}
	if labSyncDialer("") != nil {
		t.Fatal("outside a lab the preflight dials from here")
	}
}
