package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cclm-io/cclm/internal/procutil"
	"github.com/cclm-io/cclm/test/labtest"
)

// chromiumPath is Debian's chromium, which make setup installs.
const chromiumPath = "/usr/bin/chromium"

// pageState is what the test reads of the rendered dashboard.
type pageState struct {
	OnSource, OnTarget bool
	Points             int
	Downtime           string // the migration's, else its Plan VM's
	Connection         string
}

// `cclm dashboard` in a real headless browser while a VM moves from ocp7
// to ocp1 through the toolkit: the VM's badge leaves ocp7's column for
// ocp1's, the migration's chart gets points while it runs, and the
// downtime is shown once it ended. The test saves a screenshot
// ($CCLM_ARTIFACTS, else the test's temporary directory).
func TestDashboardShowsAMigrationLive(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: make setup installs it (%v)", chromiumPath, err)
		}
		t.Skipf("the dashboard's browser test needs Debian's chromium at %s (make setup installs it): %v", chromiumPath, err)
	}
	l := sharedLab(t)
	spec, before, restore := l.guestOnASlowLink(t, "watched", "cclm-dashboard", "16Mi")
	defer restore()
	vmi := spec.namespace + "/" + spec.name

	// Fifty more VMs, halted: the page lists them all, and a new one
	// appears in about the time a change takes to reach it.
	var idle strings.Builder
	names := []string{spec.name, "probe"}
	for i := range 50 {
		name := fmt.Sprintf("idle-%02d", i)
		idle.WriteString(vmSpec{name: name, namespace: spec.namespace, runStrategy: "Halted"}.manifest() + "---\n")
		names = append(names, name)
	}
	l.removeAtEnd(t, spec.namespace, names...)
	l.MustKubectl(t, sourceCluster, idle.String(), "apply", "-f", "-")

	url := l.startDashboard(t)
	browser := newBrowser(t)
	if err := chromedp.Do(browser, chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-cluster=%q] [data-vmi=%q]`, sourceCluster, vmi)))); err != nil {
		t.Fatalf("the page never showed %s running on %s: %v", vmi, sourceCluster, err)
	}
	countVMs := fmt.Sprintf(`document.querySelectorAll('[data-cluster=%q] [data-vm^="%s/"]').length`, sourceCluster, spec.namespace)
	if listed, err := chromedp.Run(browser, chromedp.Evaluate[int](countVMs)); err != nil || listed != 51 {
		t.Errorf("the page lists %d VMs of %s on %s (%v), want 51", listed, spec.namespace, sourceCluster, err)
	}
	created := time.Now()
	l.MustKubectl(t, sourceCluster, vmSpec{name: "probe", namespace: spec.namespace, runStrategy: "Halted"}.manifest(), "apply", "-f", "-")
	if err := chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-cluster=%q] [data-vm="%s/probe"]`, sourceCluster, spec.namespace)))); err != nil {
		t.Fatalf("a new VM never appeared on the page: %v", err)
	}
	t.Logf("with 52 VMs listed, a new VM appeared on the page %s after kubectl apply began (kubectl itself included)", time.Since(created).Round(10*time.Millisecond))

	migrated := make(chan error, 1)
	go func() {
		_, _, err := labtest.RunCCLM(t, 5*time.Minute, "migrate", spec.name, "--source", sourceCluster, "--target", targetCluster,
			"-n", spec.namespace, "--kubeconfig", l.Kubeconfig, "-o", "json")
		migrated <- err
	}()
	readPage := fmt.Sprintf(`(() => {
		const q = (s) => [...document.querySelectorAll(s)];
		const migration = '[data-from="%[1]s"][data-vmi-migrating="%[2]s"]';
		const downtimes = q(migration + ' [data-downtime], [data-plan-vm="%[2]s"] [data-downtime]').map((e) => e.dataset.downtime).filter((v) => v !== "");
		return {
			OnSource: q('[data-cluster="%[1]s"] [data-vmi="%[2]s"]').length > 0,
			OnTarget: q('[data-cluster="%[3]s"] [data-vmi="%[2]s"]').length > 0,
			Points: Math.max(0, ...q(migration + ' canvas').map((c) => +c.dataset.points)),
			Downtime: downtimes[0] || "",
			Connection: document.getElementById("connection").textContent,
		};
	})()`, sourceCluster, vmi, targetCluster)
	var state pageState
	maxPoints, sawMoving := 0, false
	var migrateErr error
	done := false
	deadline := time.Now().Add(4 * time.Minute)
	for !(done && state.OnTarget && !state.OnSource && state.Downtime != "") {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not show the move within 4 minutes: last %+v, most chart points %d, migrate done %v (%v)", state, maxPoints, done, migrateErr)
		}
		read, err := chromedp.Run(browser, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		state = read
		maxPoints = max(maxPoints, state.Points)
		sawMoving = sawMoving || (state.OnSource && state.Points > 0)
		select {
		case migrateErr = <-migrated:
			done = true
			if migrateErr != nil {
				t.Fatalf("cclm migrate: %v", migrateErr)
			}
		default:
		}
		time.Sleep(200 * time.Millisecond)
	}
	if maxPoints < 2 || !sawMoving {
		t.Errorf("the migration's chart had at most %d points (while the VM still ran on %s: %v); want at least 2", maxPoints, sourceCluster, sawMoving)
	}
	if state.Connection != "live" {
		t.Errorf("the page's connection badge says %q", state.Connection)
	}
	saveScreenshot(t, browser)
	t.Logf("the page showed %s leave %s for %s, with up to %d chart points and a downtime of %s ms", vmi, sourceCluster, targetCluster, maxPoints, state.Downtime)

	after := l.WaitGuestReady(t, targetCluster, spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.BootID, after.BootID)
	}
}

// startDashboard runs `cclm dashboard` on the lab and returns its URL.
func (l *labEnv) startDashboard(t *testing.T) string {
	t.Helper()
	port, err := procutil.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	address := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, labtest.CCLM(t), "dashboard", "--source", sourceCluster, "--target", targetCluster,
		"--kubeconfig", l.Kubeconfig, "--listen", address)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	url := "http://" + address + "/"
	labtest.WaitFor(t, "the dashboard to serve", 30*time.Second, func() (bool, string) {
		response, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		response.Body.Close()
		return response.StatusCode == http.StatusOK, response.Status
	})
	return url
}

// newBrowser starts a headless chromium of its own, closed at the end.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	options := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // root, as in CI
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
		// The machine's closed network refuses Chromium's own calls home.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	allocator, cancelAllocator := chromedp.NewExecAllocator(context.Background(), options...)
	browser, cancelBrowser := chromedp.NewContext(allocator)
	t.Cleanup(func() { cancelBrowser(); cancelAllocator() })
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return browser
}

func saveScreenshot(t *testing.T, browser context.Context) {
	t.Helper()
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	dir := os.Getenv("CCLM_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("save the screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("save the screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}
