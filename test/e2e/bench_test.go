package e2e

// BenchmarkLiveMigration compares cclm's live migration with plain QEMU's,
// in one run, for the same guest. See docs/benchmarks.md.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

var (
	benchDirtyRates = flag.String("dirty-rates", "0",
		"BenchmarkLiveMigration: comma-separated rates (MiB/s) at which the guest agent dirties memory during the migrations; 0 is an idle guest")
	benchDirtyWorkingSet = flag.Int("dirty-working-set", 24,
		"BenchmarkLiveMigration: MiB of guest memory the dirty workload cycles over (a 128 MiB guest has about 50 MiB free)")
	benchCases = flag.String("bench-cases", "plain,plain-tls,cclm",
		"BenchmarkLiveMigration: which cases to run, of plain, plain-tls, cclm")
	benchMultifd = flag.String("bench-multifd", "",
		"BenchmarkLiveMigration: true or false forces multifd (2 channels) on or off for the plain QEMU cases; default: as qemu.DefaultMigrationParams, which the node agents use too")
	benchDHParams = flag.String("bench-dh-params", "",
		"BenchmarkLiveMigration: a PKCS#3 dh-params.pem to give the plain-tls target (without one, QEMU generates DH parameters whenever it loads server credentials)")
	benchLabDir = flag.String("bench-lab-dir", "",
		"BenchmarkLiveMigration: use the lab running in this directory (`cclm lab up --dir D`; started if not running, never stopped); default: the package's shared lab")
)

// The benchmark's guest: what vmSpec gives every lab VM (128 MiB, the
// built-in guest image, one NIC, no disks), and the same for plain QEMU.
const (
	benchCluster   = "ocp7"
	benchNamespace = "bench"
	benchVMName    = "bench"
	benchMemoryMiB = 128
	// benchMigrationTimeout bounds one migration, cclm's phases included.
	benchMigrationTimeout = 3 * time.Minute
	// benchStuckPending: a VMIM that shows no phase beyond Pending for this
	// long is not being driven at all.
	benchStuckPending = 60 * time.Second
)

// The cases, in the order they run at each dirty rate.
const (
	benchCasePlain    = "plain"
	benchCasePlainTLS = "plain-tls"
	benchCaseCCLM     = "cclm"
)

// benchSample is what one migration measured.
type benchSample struct {
	// total is what a user waits for. plain: from starting the target QEMU
	// to the guest running there and the source gone (launch, configure,
	// migrate-incoming, migrate, resume, quit). cclm: from creating the
	// VMIM to seeing it Succeeded.
	total time.Duration
	// qemuTotal is QEMU's own total-time (migration setup to completed).
	qemuTotal time.Duration
	// dataPath (cclm) is migrationState start to end, as observed by a
	// watch on the VMI (millisecond resolution); statusDataPath is the same
	// from the status timestamps, which the API keeps to the second.
	dataPath, statusDataPath time.Duration
	// downtime is QEMU's reported downtime (guest stopped on the source to
	// the last byte sent).
	downtime time.Duration
	// paused (plain) is the source's STOP event to the target's RESUME
	// event: how long the guest really did not run.
	paused time.Duration
	// bytes is the RAM QEMU transferred.
	bytes int64
	// passes is QEMU's dirty-sync-count: how many passes over memory.
	passes int64
	// crashed: the guest's kernel crashed on the target right after this
	// migration (its memory arrived corrupted).
	crashed bool
	// timeline holds when each milestone happened (cclm: was first seen by
	// a watch), relative to the target's launch (plain) or the VMIM's
	// creation (cclm).
	timeline []benchMark
	// phases (cclm) is the VMIM's status.phaseTransitionTimestamps.
	phases []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp
}

type benchMark struct {
	what string
	at   time.Duration
}

// benchState is shared by the sub-benchmarks of one BenchmarkLiveMigration
// run: the two guests, and every sample, kept across the b.N rounds.
type benchState struct {
	ctx     context.Context
	l       *labEnv
	plain   *benchPlainGuest
	cclm    *benchCCLMGuest
	mu      sync.Mutex
	samples map[string][]benchSample // by benchKey(rate, case)
	loads   map[string][]string      // /proc/loadavg around each case
	crashes []string                 // guests that crashed after a migration
}

func benchKey(rate float64, kind string) string { return fmt.Sprintf("%g/%s", rate, kind) }

func (s *benchState) add(key string, sample benchSample) []benchSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples[key] = append(s.samples[key], sample)
	return slices.Clone(s.samples[key])
}

func BenchmarkLiveMigration(b *testing.B) {
	testenv.RequireE2E(b)
	rates, err := benchParseRates(*benchDirtyRates)
	if err != nil {
		b.Fatal(err)
	}
	cases := map[string]bool{}
	for _, c := range strings.Split(*benchCases, ",") {
		switch c = strings.TrimSpace(c); c {
		case benchCasePlain, benchCasePlainTLS, benchCaseCCLM:
			cases[c] = true
		default:
			b.Fatalf("-bench-cases: unknown case %q (use plain, plain-tls, cclm)", c)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	l := benchLab(b)
	state := &benchState{ctx: ctx, l: l, samples: map[string][]benchSample{}, loads: map[string][]string{}}

	// The lab VM boots while the plain guest does.
	if cases[benchCaseCCLM] {
		state.cclm = newBenchCCLMGuest(b, l)
	}
	if cases[benchCasePlain] || cases[benchCasePlainTLS] {
		state.plain = newBenchPlainGuest(ctx, b, l)
	}
	if state.cclm != nil {
		state.cclm.waitReady(b)
	}
	b.Logf("lab %s (id %s); load before the runs: %s", l.dir, lab.ID(l.dir), benchLoadAvg())

	for _, rate := range rates {
		for _, kind := range []string{benchCasePlain, benchCasePlainTLS, benchCaseCCLM} {
			if !cases[kind] {
				continue
			}
			b.Run(fmt.Sprintf("dirty=%gMiBps/%s", rate, kind), func(b *testing.B) {
				state.runCase(b, rate, kind)
			})
		}
	}
	state.printReport(os.Stdout, rates)
	for _, crash := range state.crashes {
		b.Error(crash)
	}
}

// runCase is one sub-benchmark: b.N migrations of one case at one rate.
func (s *benchState) runCase(b *testing.B, rate float64, kind string) {
	b.StopTimer()
	key := benchKey(rate, kind)
	// A guest that crashed late, after its last check, is replaced first.
	for _, guest := range []string{benchCasePlain, benchCaseCCLM} {
		if (guest == benchCaseCCLM && s.cclm == nil) || (guest == benchCasePlain && s.plain == nil) {
			continue
		}
		if err := s.consoleCrash(guest); err != nil {
			s.mu.Lock()
			s.crashes = append(s.crashes, fmt.Sprintf("found before the %s runs at dirty %g MiB/s: %v", kind, rate, err))
			s.mu.Unlock()
			s.restartGuest(b, guest, 0)
		}
	}
	// Only the guest being measured dirties memory; the other one idles.
	if kind == benchCaseCCLM {
		s.plain.dirty(s.ctx, b, 0)
		s.cclm.dirty(b, rate)
	} else {
		s.cclm.dirty(b, 0)
		s.plain.dirty(s.ctx, b, rate)
	}
	benchSettle(rate)
	load := benchLoadAvg()
	var all []benchSample
	for i := range b.N {
		// A guest can crash later than checkGuest looks: never migrate one.
		if err := s.consoleCrash(kind); err != nil {
			s.mu.Lock()
			s.crashes = append(s.crashes, fmt.Sprintf("found before %s migration %d at dirty %g MiB/s: %v", kind, i+1, rate, err))
			s.mu.Unlock()
			s.restartGuest(b, kind, rate)
		}
		var sample benchSample
		switch kind {
		case benchCaseCCLM:
			s.cclm.waitMigratable(b)
			b.StartTimer()
			sample = s.cclm.migrate(s.ctx, b)
		default:
			b.StartTimer()
			sample = s.plain.migrate(s.ctx, b, kind == benchCasePlainTLS)
		}
		b.StopTimer()
		if err := s.checkGuest(b, kind); err != nil {
			// Reported by the parent benchmark, after the table: a failed
			// sub-benchmark would stop after its first round.
			sample.crashed = true
			s.mu.Lock()
			s.crashes = append(s.crashes, fmt.Sprintf("%s migration %d at dirty %g MiB/s (%d passes over memory) left a crashed guest: %v", kind, i+1, rate, sample.passes, err))
			s.mu.Unlock()
			b.Logf("%s migration %d at dirty %g MiB/s left a crashed guest; restarting it and going on", kind, i+1, rate)
			s.restartGuest(b, kind, rate)
		}
		all = s.add(key, sample)
	}
	s.mu.Lock()
	s.loads[key] = append(s.loads[key], load+" -> "+benchLoadAvg())
	s.mu.Unlock()
	m := benchMedians(all)
	b.ReportMetric(benchMs(m.total), "total-ms")
	b.ReportMetric(benchMs(m.qemuTotal), "qemu-total-ms")
	b.ReportMetric(benchMs(m.downtime), "downtime-ms")
	b.ReportMetric(float64(m.bytes), "transferred-bytes")
	if kind == benchCaseCCLM {
		b.ReportMetric(benchMs(m.dataPath), "datapath-ms")
	} else {
		b.ReportMetric(benchMs(m.paused), "paused-ms")
	}
}

// guestCheckDelay is how long after a migration the guest is checked: a
// guest whose memory arrived corrupted crashes within about a second.
const guestCheckDelay = 1500 * time.Millisecond

// consoleCrash reports a crash the guest's kernel printed on the serial
// console of its current QEMU.
func (s *benchState) consoleCrash(kind string) error {
	if kind == benchCaseCCLM {
		for _, console := range benchVMIConsoles() {
			if err := benchGuestHealthy(console); err != nil {
				return err
			}
		}
		return nil
	}
	return benchGuestHealthy(s.plain.cur.Paths().ConsoleLog)
}

// checkGuest tells whether the guest survived the migration just made: its
// kernel reported no crash on the serial console and its agent answers.
func (s *benchState) checkGuest(b *testing.B, kind string) error {
	time.Sleep(guestCheckDelay)
	if err := s.consoleCrash(kind); err != nil {
		return err
	}
	if kind == benchCaseCCLM {
		var err error
		for range 3 {
			if _, err = s.cclm.l.guestInfo(b, benchCluster, benchNamespace, benchVMName); err == nil {
				return nil
			}
			time.Sleep(time.Second)
		}
		return fmt.Errorf("the guest agent does not answer after the migration: %w", err)
	}
	g := s.plain
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if _, err := g.agent.WaitReady(ctx); err != nil {
		return fmt.Errorf("the guest agent does not answer after the migration: %w\nconsole:\n%s", err, g.cur.ConsoleTail(20))
	}
	return nil
}

// restartGuest replaces a crashed guest by a freshly booted one, dirtying
// at rate.
func (s *benchState) restartGuest(b *testing.B, kind string, rate float64) {
	if kind == benchCaseCCLM {
		g := s.cclm
		g.l.mustKubectl(b, benchCluster, "", "delete", "vmi", benchVMName, "-n", benchNamespace, "--wait=true", "--timeout=120s")
		g.waitReady(b)
		g.rate = -1
		g.dirty(b, rate)
	} else {
		g := s.plain
		_ = g.cur.Kill()
		g.cur = g.launch(s.ctx, b, g.side, false)
		g.connectAgent(s.ctx, b, 90*time.Second)
		g.rate = -1
		g.dirty(s.ctx, b, rate)
	}
	benchSettle(rate)
}

// settle lets a new dirty rate establish itself before measuring.
func benchSettle(rate float64) {
	if rate > 0 {
		time.Sleep(2 * time.Second)
	} else {
		time.Sleep(500 * time.Millisecond)
	}
}

func benchParseRates(s string) ([]float64, error) {
	var rates []float64
	for _, field := range strings.Split(s, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
		if err != nil || rate < 0 {
			return nil, fmt.Errorf("-dirty-rates %q: %q is not a rate in MiB/s (e.g. -dirty-rates=0,8,16)", s, field)
		}
		rates = append(rates, rate)
	}
	return rates, nil
}

// ---- the lab ----

// benchLab is the package's shared lab, or the lab of -bench-lab-dir.
func benchLab(b *testing.B) *labEnv {
	b.Helper()
	if *benchLabDir == "" {
		return sharedLab(b)
	}
	dir, err := filepath.Abs(*benchLabDir)
	if err != nil {
		b.Fatal(err)
	}
	if _, stderr, err := runCCLM(b, 5*time.Minute, "lab", "up", "--dir", dir, "--bin-dir", testenv.BinDir()); err != nil {
		b.Fatalf("lab up --dir %s: %v\n%s", dir, err, stderr)
	}
	return &labEnv{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
}

// ---- plain QEMU ----

// benchPlainGuest is the benchmark's own guest: QEMU started in the ocp7 node
// namespaces, migrated back and forth between them over migration0, as
// KubeVirt would configure QEMU (DefaultMigrationParams) but driven
// directly, with nothing between the two QEMUs.
type benchPlainGuest struct {
	nodes   [2]*netlab.Node
	addrs   [2]netip.Addr
	dom     qemu.Domain // the template; each QEMU gets its own RunDir and tap
	baseDir string
	tls     qemu.TLSMaterial
	cur     *qemu.Instance
	side    int // index of the node cur runs on
	agent   *guestagent.Client
	rate    float64
	next    int // run directory counter
	cleanup func(func())
}

func newBenchPlainGuest(ctx context.Context, b *testing.B, l *labEnv) *benchPlainGuest {
	b.Helper()
	labID := lab.ID(l.dir)
	g := &benchPlainGuest{cleanup: b.Cleanup}
	for i := range 2 {
		node, err := netlab.OpenNode(labID, lab.NodeName(benchCluster, i))
		if err != nil {
			b.Fatal(err)
		}
		g.nodes[i] = node
		if g.addrs[i], err = benchMigrationAddress(node); err != nil {
			b.Fatal(err)
		}
	}
	// Short: QEMU's unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "cclmb-")
	if err != nil {
		b.Fatal(err)
	}
	g.baseDir = dir
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	g.tls = benchTLSMaterial(b, g.addrs[:])
	guestDir := filepath.Join(testenv.RepoRoot(), "bin", "guest")
	kernel := filepath.Join(guestDir, "vmlinux") // as the node agent: boots faster under TCG
	if _, err := os.Stat(kernel); err != nil {
		kernel = filepath.Join(guestDir, "vmlinuz")
	}
	g.dom = qemu.Domain{
		Name:      "bench_plain",
		UUID:      "0b3e5c1a-7d2f-4e8b-9a6c-5f4d3e2c1b0a",
		MemoryMiB: benchMemoryMiB,
		Boot:      qemu.Boot{Kernel: kernel, Initrd: filepath.Join(guestDir, "initramfs.img"), Cmdline: "console=ttyS0 quiet"},
		NICs:      []qemu.NIC{{Name: "default", MAC: "52:54:00:b0:0b:01"}},
	}
	began := time.Now()
	g.cur = g.launch(ctx, b, 0, false)
	g.connectAgent(ctx, b, 90*time.Second)
	b.Logf("plain QEMU guest booted on %s in %s (%s)", g.nodes[0].Name, time.Since(began).Round(100*time.Millisecond), g.cur.Accel())
	return g
}

// migrationAddress is a node's IPv4 address on migration0.
func benchMigrationAddress(node *netlab.Node) (netip.Addr, error) {
	links, err := node.Links()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, link := range links {
		if link.Name != "migration0" {
			continue
		}
		for _, prefix := range link.Addresses {
			if prefix.Addr().Is4() {
				return prefix.Addr(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s has no IPv4 address on migration0 (is the lab's migration network up?)", node.Name)
}

// benchTLSMaterial is one certificate for both nodes' migration addresses,
// server and client, from a CA of its own (internal/pki, like the lab's
// migration PKI).
func benchTLSMaterial(b *testing.B, addrs []netip.Addr) qemu.TLSMaterial {
	b.Helper()
	ca, err := pki.NewCA("cclm-bench-migration-ca")
	if err != nil {
		b.Fatal(err)
	}
	var ips []net.IP
	for _, a := range addrs {
		ips = append(ips, net.IP(a.AsSlice()))
	}
	kp, err := ca.Issue(pki.CertRequest{CommonName: "cclm-bench-node", IPs: ips, Server: true, Client: true})
	if err != nil {
		b.Fatal(err)
	}
	key, err := kp.KeyPEM()
	if err != nil {
		b.Fatal(err)
	}
	return qemu.TLSMaterial{CACertPEM: ca.CertPEM(), CertPEM: kp.CertPEM(), KeyPEM: key}
}

// launch starts a QEMU for the guest in node side's namespace, killed when
// the benchmark ends (and by the kernel should this process die first).
func (g *benchPlainGuest) launch(ctx context.Context, b *testing.B, side int, incoming bool) *qemu.Instance {
	b.Helper()
	dom := g.dom
	dom.RunDir = filepath.Join(g.baseDir, strconv.Itoa(g.next))
	dom.NICs = []qemu.NIC{{Name: "default", Tap: fmt.Sprintf("cbt%d%d", os.Getpid()%100000, g.next), MAC: g.dom.NICs[0].MAC}}
	g.next++
	in, err := qemu.Launch(ctx, dom, qemu.Options{Incoming: incoming, Start: g.nodes[side].StartProcess, DieWithStarter: true})
	if err != nil {
		b.Fatal(err)
	}
	g.cleanup(func() { _ = in.Kill() })
	return in
}

func (g *benchPlainGuest) connectAgent(ctx context.Context, b *testing.B, timeout time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if g.agent != nil {
		g.agent.Close()
	}
	agent, err := guestagent.Dial(ctx, g.cur.Paths().Agent)
	if err != nil {
		b.Fatal(err)
	}
	g.agent = agent
	g.cleanup(func() { agent.Close() })
	if _, err := agent.WaitReady(ctx); err != nil {
		b.Fatalf("plain guest's agent never answered: %v\nconsole:\n%s", err, g.cur.ConsoleTail(20))
	}
}

// dialAgent connects to the agent of the guest's current QEMU; whether it
// answers is checkGuest's business.
func (g *benchPlainGuest) dialAgent(ctx context.Context, b *testing.B) {
	b.Helper()
	if g.agent != nil {
		g.agent.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	agent, err := guestagent.Dial(ctx, g.cur.Paths().Agent)
	if err != nil {
		b.Fatal(err)
	}
	g.agent = agent
	g.cleanup(func() { agent.Close() })
}

// dirty sets the guest's dirty workload (0 stops it).
func (g *benchPlainGuest) dirty(ctx context.Context, b *testing.B, rate float64) {
	b.Helper()
	if g == nil || g.rate == rate {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := g.agent.Dirty(ctx, guestagent.DirtyArgs{RateMiBps: rate, WorkingSetMiB: *benchDirtyWorkingSet}); err != nil {
		b.Fatalf("plain guest: dirty %g MiB/s: %v", rate, err)
	}
	g.rate = rate
}

// migrate moves the guest to the other node, in the order the node agents
// follow (internal/qemu's package documentation), without disks.
func (g *benchPlainGuest) migrate(ctx context.Context, b *testing.B, withTLS bool) benchSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, benchMigrationTimeout)
	defer cancel()
	src, to := g.cur, 1-g.side
	params := qemu.DefaultMigrationParams()
	params.TLS = withTLS
	if *benchMultifd != "" {
		params.Multifd = *benchMultifd == "true"
	}

	began := time.Now()
	var marks []benchMark
	mark := func(what string) { marks = append(marks, benchMark{what, time.Since(began)}) }
	dst := g.launch(ctx, b, to, true)
	mark("target QEMU launched (QMP answers)")
	if withTLS {
		for _, side := range []struct {
			in       *qemu.Instance
			endpoint qemu.TLSEndpoint
		}{{dst, qemu.TLSServer}, {src, qemu.TLSClient}} {
			dir := filepath.Join(side.in.Domain().RunDir, "tls-"+string(side.endpoint))
			benchMust(b, qemu.WriteTLSDir(dir, g.tls))
			if *benchDHParams != "" && side.endpoint == qemu.TLSServer {
				params, err := os.ReadFile(*benchDHParams)
				benchMust(b, err)
				benchMust(b, os.WriteFile(filepath.Join(dir, "dh-params.pem"), params, 0o644))
			}
			benchMust(b, side.in.AddTLSCredentials(ctx, dir, side.endpoint))
			if side.endpoint == qemu.TLSServer {
				mark("TLS credentials loaded on the target")
			} else {
				mark("TLS credentials loaded on the source")
			}
		}
	}
	benchMust(b, dst.ConfigureMigration(ctx, qemu.RoleTarget, params))
	listen, err := dst.MigrateIncoming(ctx, qemu.MigrationURI(net.JoinHostPort(g.addrs[to].String(), "0")))
	benchMust(b, err)
	mark("target configured and listening")
	stopped := benchFirstEvent(src, "STOP")
	resumed := benchFirstEvent(dst, "RESUME")
	targetRuns := make(chan error, 1)
	var incomingDone, resumedAt time.Duration
	go func() {
		if _, err := dst.WaitIncoming(ctx); err != nil {
			targetRuns <- err
			return
		}
		incomingDone = time.Since(began)
		if err := dst.Resume(ctx); err != nil {
			targetRuns <- err
			return
		}
		resumedAt = time.Since(began)
		targetRuns <- dst.AnnounceSelf(ctx)
	}()
	benchMust(b, src.ConfigureMigration(ctx, qemu.RoleSource, params))
	benchMust(b, src.Migrate(ctx, qemu.MigrationURI(listen)))
	mark("source configured, migrate issued")
	progress, err := src.WaitMigration(ctx, nil)
	benchMust(b, err)
	if progress.Status != qemu.MigrationCompleted {
		b.Fatalf("plain migration ended %s: %+v", progress.Status, progress)
	}
	mark("source saw the migration completed")
	benchMust(b, <-targetRuns)
	marks = append(marks, benchMark{"target saw the incoming migration completed", incomingDone},
		benchMark{"target resumed (cont returned)", resumedAt})
	benchMust(b, src.Quit(ctx))
	total := time.Since(began)
	mark("source QEMU quit (end)")

	sample := benchSample{total: total, qemuTotal: progress.TotalTime, downtime: progress.Downtime, bytes: progress.TransferredBytes, passes: progress.Iteration}
	stop, resume := <-stopped, <-resumed
	if !stop.IsZero() && !resume.IsZero() {
		sample.paused = resume.Sub(stop)
		marks = append(marks, benchMark{"source guest stopped (STOP event)", stop.Sub(began)},
			benchMark{"target guest running (RESUME event)", resume.Sub(began)})
	}
	slices.SortStableFunc(marks, func(x, y benchMark) int { return int(x.at - y.at) })
	sample.timeline = marks
	g.cur, g.side = dst, to
	g.dialAgent(ctx, b)
	return sample
}

// firstEvent delivers the time of in's first event name, or the zero time
// if none comes within benchMigrationTimeout.
func benchFirstEvent(in *qemu.Instance, name string) <-chan time.Time {
	events, unsubscribe := in.Events()
	found := make(chan time.Time, 1)
	go func() {
		defer unsubscribe()
		timeout := time.After(benchMigrationTimeout)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					found <- time.Time{}
					return
				}
				if e.Name == name {
					found <- e.Time
					return
				}
			case <-timeout:
				found <- time.Time{}
				return
			}
		}
	}()
	return found
}

func benchMust(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// ---- cclm ----

// benchCCLMGuest is the same guest as a VM in the lab, migrated by
// VirtualMachineInstanceMigrations.
type benchCCLMGuest struct {
	l     *labEnv
	kube  client.WithWatch
	rate  float64
	count int
}

func newBenchCCLMGuest(b *testing.B, l *labEnv) *benchCCLMGuest {
	b.Helper()
	kube, err := client.NewWithWatch(l.restConfig(b, benchCluster), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	g := &benchCCLMGuest{l: l, kube: kube}
	l.mustKubectl(b, benchCluster, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", benchNamespace), "apply", "-f", "-")
	spec := vmSpec{name: benchVMName, namespace: benchNamespace, memory: fmt.Sprintf("%dMi", benchMemoryMiB)}
	l.mustKubectl(b, benchCluster, spec.manifest(), "apply", "-f", "-")
	b.Cleanup(func() {
		_, _, _ = l.kubectl(b, benchCluster, "", "delete", "vm", benchVMName, "-n", benchNamespace, "--wait=true", "--timeout=60s")
		_, _, _ = l.kubectl(b, benchCluster, "", "delete", "vmim", "--all", "-n", benchNamespace, "--wait=false")
	})
	return g
}

func (g *benchCCLMGuest) waitReady(b *testing.B) {
	b.Helper()
	began := time.Now()
	g.l.waitGuestReady(b, benchCluster, benchNamespace, benchVMName, 3*time.Minute)
	b.Logf("cclm VM %s/%s running with its agent after %s, on %s", benchNamespace, benchVMName,
		time.Since(began).Round(100*time.Millisecond), g.l.vmi(b, benchCluster, benchNamespace, benchVMName).Status.NodeName)
}

// waitMigratable waits until the VM can be migrated again: its guest agent
// answers on the node that owns the VMI, and no migration is in flight.
func (g *benchCCLMGuest) waitMigratable(b *testing.B) {
	b.Helper()
	err := kube.Poll(context.Background(), 250*time.Millisecond, time.Minute, "VM "+benchNamespace+"/"+benchVMName+" to be migratable, its guest agent answering",
		func(ctx context.Context) (bool, string, error) {
			vmi := g.l.vmi(b, benchCluster, benchNamespace, benchVMName)
			if vmi == nil {
				return false, "no VMI", nil
			}
			state := vmi.Status.MigrationState
			if state != nil && !state.Completed && !state.Failed {
				return false, "migration " + string(state.MigrationUID) + " still in flight", nil
			}
			for _, console := range benchVMIConsoles() {
				if err := benchGuestHealthy(console); err != nil {
					return false, "", err
				}
			}
			if !conditionTrue(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable) {
				return false, "IsMigratable not True", nil
			}
			if _, err := g.l.guestInfo(b, benchCluster, benchNamespace, benchVMName); err != nil {
				return false, "guest agent on " + vmi.Status.NodeName + ": " + err.Error(), nil
			}
			return true, "", nil
		})
	if err != nil {
		b.Fatalf("%v\n%s", err, benchDiagnose(b, g.l))
	}
}

// benchGuestHealthy fails if the guest's kernel reported a crash on the
// serial console of this QEMU: a migration must never corrupt the guest.
func benchGuestHealthy(consoleLog string) error {
	data, err := os.ReadFile(consoleLog)
	if err != nil {
		return nil // no console output yet
	}
	first, found := -1, ""
	for _, sign := range []string{"Kernel panic", "BUG:", "Oops:", "general protection fault"} {
		if i := strings.Index(string(data), sign); i >= 0 && (first < 0 || i < first) {
			first, found = i, sign
		}
	}
	if first >= 0 {
		start := strings.LastIndex(string(data[:first]), "\n") + 1
		lines := strings.SplitN(string(data[start:]), "\n", 26)
		return fmt.Errorf("the guest crashed after a migration: %s reports %q:\n%s", consoleLog, found, strings.Join(lines[:min(len(lines), 25)], "\n"))
	}
	return nil
}

// benchVMIConsoles are the console logs of the QEMUs that run the VMI.
func benchVMIConsoles() []string {
	var logs []string
	for _, pid := range qemuPids(benchNamespace, benchVMName) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		for i, arg := range args[:max(len(args)-1, 0)] {
			if arg == "-pidfile" {
				logs = append(logs, filepath.Join(filepath.Dir(args[i+1]), "console.log"))
			}
		}
	}
	return logs
}

// benchDiagnose gathers what explains a guest that stopped answering: the
// VM's QEMUs, their console and log tails, and the lab's view of it.
func benchDiagnose(b testing.TB, l *labEnv) string {
	var out strings.Builder
	for _, pid := range qemuPids(benchNamespace, benchVMName) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		for i, arg := range args[:max(len(args)-1, 0)] {
			if arg == "-pidfile" {
				dir := filepath.Dir(args[i+1])
				console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
				log, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
				fmt.Fprintf(&out, "QEMU pid %d in %s\nconsole tail:\n%s\nQEMU log tail:\n%s\n", pid, dir, benchTail(string(console), 30), benchTail(string(log), 10))
			}
		}
	}
	vmis, _, _ := l.kubectl(b, benchCluster, "", "get", "vmi", benchVMName, "-n", benchNamespace, "-o", "yaml")
	fmt.Fprintf(&out, "VMI:\n%s", vmis)
	return out.String()
}

func benchTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func (g *benchCCLMGuest) dirty(b *testing.B, rate float64) {
	b.Helper()
	if g == nil || g.rate == rate {
		return
	}
	g.waitMigratable(b)
	g.l.guestCall(b, benchCluster, benchNamespace, benchVMName, guestagent.CmdDirty, guestagent.DirtyArgs{RateMiBps: rate, WorkingSetMiB: *benchDirtyWorkingSet}, nil)
	g.rate = rate
}

// benchObserved is one object as a watch delivered it, and when.
type benchObserved struct {
	at  time.Time
	obj client.Object
}

// migrate creates a VMIM, waits for it to end, and returns its figures and
// the timeline of what the watches saw.
func (g *benchCCLMGuest) migrate(ctx context.Context, b *testing.B) benchSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, benchMigrationTimeout)
	defer cancel()
	g.count++
	name := fmt.Sprintf("%s-%d-%d", benchVMName, time.Now().Unix()%100000, g.count)
	migratedBefore := g.migratedEvents(ctx, b)

	// Watch the VMIM and the VMI from before the creation: every change is
	// stamped with the time it arrived here.
	vmimWatch, err := g.kube.Watch(ctx, &kubevirtv1.VirtualMachineInstanceMigrationList{}, client.InNamespace(benchNamespace), client.MatchingFields{"metadata.name": name})
	benchMust(b, err)
	defer vmimWatch.Stop()
	vmiWatch, err := g.kube.Watch(ctx, &kubevirtv1.VirtualMachineInstanceList{}, client.InNamespace(benchNamespace), client.MatchingFields{"metadata.name": benchVMName})
	benchMust(b, err)
	defer vmiWatch.Stop()
	var vmiMu sync.Mutex
	var vmiSeen []benchObserved
	vmiDone := make(chan struct{})
	go func() {
		defer close(vmiDone)
		for event := range vmiWatch.ResultChan() {
			if obj, ok := event.Object.(*kubevirtv1.VirtualMachineInstance); ok && event.Type != watch.Error {
				vmiMu.Lock()
				vmiSeen = append(vmiSeen, benchObserved{time.Now(), obj})
				vmiMu.Unlock()
			}
		}
	}()

	vmim := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: benchVMName},
	}
	began := time.Now()
	benchMust(b, g.kube.Create(ctx, vmim))
	created := time.Since(began)

	var vmimSeen []benchObserved
	var final *kubevirtv1.VirtualMachineInstanceMigration
	var finalAt time.Time
	stuck := time.NewTimer(benchStuckPending)
	defer stuck.Stop()
	events := vmimWatch.ResultChan()
	for final == nil {
		select {
		case event, ok := <-events:
			if !ok {
				// The watch ended early: poll instead.
				events = nil
				continue
			}
			obj, isVMIM := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration)
			if !isVMIM || event.Type == watch.Error {
				continue
			}
			vmimSeen = append(vmimSeen, benchObserved{time.Now(), obj})
			if obj.Status.Phase != kubevirtv1.MigrationPending && obj.Status.Phase != kubevirtv1.MigrationPhaseUnset {
				stuck.Stop()
			}
			if obj.IsFinal() {
				final, finalAt = obj, time.Now()
			}
		case <-time.After(200 * time.Millisecond):
			if events == nil {
				if current := g.l.vmim(b, benchCluster, benchNamespace, name); current != nil && current.IsFinal() {
					final, finalAt = current, time.Now()
				}
			}
		case <-stuck.C:
			current := g.l.vmim(b, benchCluster, benchNamespace, name)
			_, _, _ = g.l.kubectl(b, benchCluster, "", "delete", "vmim", name, "-n", benchNamespace, "--wait=false")
			phase := "<none>"
			if current != nil && current.Status.Phase != "" {
				phase = string(current.Status.Phase)
			}
			b.Fatalf("VMIM %s/%s is still in phase %s %s after its creation: no migration controller drives VMIMs in this lab (is it wired into `cclm lab`?); run the plain cases alone with -bench-cases=plain,plain-tls",
				benchNamespace, name, phase, benchStuckPending)
		case <-ctx.Done():
			b.Fatalf("VMIM %s/%s did not end within %s: %s", benchNamespace, name, benchMigrationTimeout, benchDescribeVMIM(g.l.vmim(b, benchCluster, benchNamespace, name)))
		}
	}
	total := finalAt.Sub(began)
	if final.Status.Phase != kubevirtv1.MigrationSucceeded {
		b.Fatalf("VMIM %s/%s ended %s: %s", benchNamespace, name, final.Status.Phase, benchDescribeVMIM(final))
	}
	// Let the VMI watch catch up with what the VMIM already shows.
	time.Sleep(100 * time.Millisecond)
	vmiWatch.Stop()
	<-vmiDone

	sample := benchSample{total: total, phases: final.Status.PhaseTransitionTimestamps}
	if state := final.Status.MigrationState; state != nil {
		if state.StartTimestamp != nil && state.EndTimestamp != nil {
			sample.statusDataPath = state.EndTimestamp.Sub(state.StartTimestamp.Time)
		}
		if p := state.Progress; p != nil {
			sample.downtime = time.Duration(p.DowntimeMs) * time.Millisecond
			sample.bytes = p.TransferredBytes
			sample.passes = p.Iteration
		}
	}
	if total, _, ok := g.newMigratedEvent(ctx, b, migratedBefore); ok {
		sample.qemuTotal = total
	}
	vmiMu.Lock()
	var lastState *kubevirtv1.VirtualMachineInstanceMigrationState
	sample.timeline, sample.dataPath, lastState = benchTimeline(began, created, final.UID, vmimSeen, vmiSeen)
	vmiMu.Unlock()
	// The VMI's own last migrationState is the source agent's final word;
	// the VMIM's copy may predate it.
	if lastState != nil && lastState.Progress != nil && lastState.Progress.DowntimeMs > 0 {
		sample.downtime = time.Duration(lastState.Progress.DowntimeMs) * time.Millisecond
		sample.bytes = lastState.Progress.TransferredBytes
		sample.passes = lastState.Progress.Iteration
	}
	sample.timeline = append(sample.timeline, benchMark{"VMIM Succeeded seen (end)", total})
	if started, ok := benchQEMUStartedAt(); ok && started.After(began) {
		sample.timeline = append(sample.timeline, benchMark{"target node agent launches QEMU (instance.json startedAt)", started.Sub(began)})
	}
	slices.SortStableFunc(sample.timeline, func(x, y benchMark) int { return int(x.at - y.at) })
	return sample
}

// benchTimeline turns what the watches saw into first-seen milestones,
// relative to the VMIM's creation, and the data path: the migrationState
// of this migration first seen, to completed first seen.
func benchTimeline(began time.Time, created time.Duration, uid types.UID, vmims, vmis []benchObserved) ([]benchMark, time.Duration, *kubevirtv1.VirtualMachineInstanceMigrationState) {
	marks := []benchMark{{"VMIM create returned", created}}
	seen := map[string]bool{}
	mark := func(what string, at time.Time) time.Duration {
		if seen[what] {
			return -1
		}
		seen[what] = true
		marks = append(marks, benchMark{what, at.Sub(began)})
		return at.Sub(began)
	}
	for _, o := range vmims {
		m := o.obj.(*kubevirtv1.VirtualMachineInstanceMigration)
		if m.Status.Phase != "" {
			mark("VMIM phase "+string(m.Status.Phase), o.at)
		}
	}
	var start, end time.Duration = -1, -1
	var last *kubevirtv1.VirtualMachineInstanceMigrationState
	sourceNode := ""
	for _, o := range vmis {
		vmi := o.obj.(*kubevirtv1.VirtualMachineInstance)
		state := vmi.Status.MigrationState
		if state == nil || state.MigrationUID != uid {
			if sourceNode == "" {
				sourceNode = vmi.Status.NodeName
			}
			continue
		}
		last = state
		if at := mark("VMI migrationState written (target node chosen)", o.at); at >= 0 {
			start = at
		}
		if state.TargetNodeAddress != "" {
			mark("targetNodeAddress published (target QEMU listening)", o.at)
		}
		if p := state.Progress; p != nil {
			mark("first progress published (source streaming)", o.at)
			if p.DowntimeMs > 0 || (p.RemainingBytes == 0 && p.TransferredBytes > 0 && p.Iteration > 0 && state.Completed) {
				mark("progress with downtime (QEMU completed on the source)", o.at)
			}
		}
		if vmi.Status.NodeName == state.TargetNode && state.TargetNode != "" {
			mark("VMI nodeName = target (target resumed, took over)", o.at)
		}
		if state.Completed {
			if at := mark("migrationState completed (source QEMU quit)", o.at); at >= 0 {
				end = at
			}
		}
	}
	if start < 0 || end < 0 {
		return marks, 0, last
	}
	return marks, end - start, last
}

// benchQEMUStartedAt is when the node agent started the VM's newest QEMU,
// as Launch recorded it in the run directory (instance.json).
func benchQEMUStartedAt() (time.Time, bool) {
	var newest time.Time
	for _, pid := range qemuPids(benchNamespace, benchVMName) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for i, arg := range args[:max(len(args)-1, 0)] {
			if arg != "-pidfile" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(filepath.Dir(args[i+1]), "instance.json"))
			if err != nil {
				continue
			}
			var record struct {
				StartedAt time.Time `json:"startedAt"`
			}
			if json.Unmarshal(data, &record) == nil && record.StartedAt.After(newest) {
				newest = record.StartedAt
			}
		}
	}
	return newest, !newest.IsZero()
}

// migratedEvents names the VM's "Migrated" events (the source node agent's,
// whose note carries QEMU's total time) that exist now.
func (g *benchCCLMGuest) migratedEvents(ctx context.Context, b *testing.B) map[string]bool {
	b.Helper()
	names := map[string]bool{}
	var events corev1.EventList
	if err := g.kube.List(ctx, &events, client.InNamespace(benchNamespace)); err != nil {
		b.Logf("listing events: %v", err)
		return names
	}
	for _, e := range events.Items {
		if e.Reason == "Migrated" {
			names[e.Name] = true
		}
	}
	return names
}

var benchMigratedNote = regexp.MustCompile(`in (\S+) \(downtime (\S+)\)`)

// newMigratedEvent finds the Migrated event this migration added and
// returns the QEMU total time and downtime it reports.
func (g *benchCCLMGuest) newMigratedEvent(ctx context.Context, b *testing.B, before map[string]bool) (total, downtime time.Duration, ok bool) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var events corev1.EventList
		if err := g.kube.List(ctx, &events, client.InNamespace(benchNamespace)); err == nil {
			for _, e := range events.Items {
				if e.Reason != "Migrated" || before[e.Name] {
					continue
				}
				m := benchMigratedNote.FindStringSubmatch(e.Message)
				if m == nil {
					continue
				}
				total, err1 := time.ParseDuration(m[1])
				downtime, err2 := time.ParseDuration(m[2])
				if err1 == nil && err2 == nil {
					return total, downtime, true
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, 0, false
}

func benchDescribeVMIM(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	if m == nil {
		return "VMIM gone"
	}
	s := fmt.Sprintf("phase %s", m.Status.Phase)
	if state := m.Status.MigrationState; state != nil {
		s += fmt.Sprintf(", %s -> %s, failureReason %q", state.SourceNode, state.TargetNode, state.FailureReason)
	}
	return s
}

// ---- figures ----

func benchMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func benchMedian[T int64 | time.Duration](values []T) T {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func benchPick[T any](samples []benchSample, field func(benchSample) T) []T {
	var out []T
	for _, s := range samples {
		out = append(out, field(s))
	}
	return out
}

// medians is the median of each figure over the samples.
func benchMedians(samples []benchSample) benchSample {
	return benchSample{
		total:          benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.total })),
		qemuTotal:      benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.qemuTotal })),
		dataPath:       benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.dataPath })),
		statusDataPath: benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.statusDataPath })),
		downtime:       benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.downtime })),
		paused:         benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.paused })),
		bytes:          benchMedian(benchPick(samples, func(s benchSample) int64 { return s.bytes })),
		passes:         benchMedian(benchPick(samples, func(s benchSample) int64 { return s.passes })),
	}
}

func benchMinMax(samples []benchSample) (time.Duration, time.Duration) {
	totals := benchPick(samples, func(s benchSample) time.Duration { return s.total })
	if len(totals) == 0 {
		return 0, 0
	}
	return slices.Min(totals), slices.Max(totals)
}

func benchLoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "?"
	}
	return strings.Join(fields[:3], " ")
}

// printReport prints, per dirty rate, the medians of each case, the ratios
// cclm/plain, and cclm's median timeline.
func (s *benchState) printReport(w *os.File, rates []float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(w, "\nLive migration, 128 MiB guest, medians over n runs (TCG, %d CPUs; load average at the end %s)\n", runtime.NumCPU(), benchLoadAvg())
	fmt.Fprintf(w, "%-6s %-10s %2s %18s %9s %9s %9s %9s %9s %8s %6s %9s %8s  %s\n",
		"dirty", "case", "n", "total ms (min-max)", "QEMU ms", "other ms", "path ms", "down ms", "paused", "MiB sent", "passes", "status s", "crashed", "load (1/5/15 min, before -> after)")
	for _, rate := range rates {
		for _, kind := range []string{benchCasePlain, benchCasePlainTLS, benchCaseCCLM} {
			samples := s.samples[benchKey(rate, kind)]
			if len(samples) == 0 {
				continue
			}
			m := benchMedians(samples)
			lo, hi := benchMinMax(samples)
			path, paused, status := "-", "-", "-"
			if kind == benchCaseCCLM {
				path = fmt.Sprintf("%.0f", benchMs(m.dataPath))
				status = fmt.Sprintf("%.0f", m.statusDataPath.Seconds())
			} else {
				paused = fmt.Sprintf("%.0f", benchMs(m.paused))
			}
			crashed := 0
			for _, sample := range samples {
				if sample.crashed {
					crashed++
				}
			}
			other := benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.total - s.qemuTotal }))
			fmt.Fprintf(w, "%-6g %-10s %2d %7.0f (%4.0f-%4.0f) %9.0f %9.0f %9s %9.0f %9s %8.1f %6d %9s %8s  %s\n",
				rate, kind, len(samples), benchMs(m.total), benchMs(lo), benchMs(hi), benchMs(m.qemuTotal), benchMs(other), path, benchMs(m.downtime), paused,
				float64(m.bytes)/(1<<20), m.passes, status, fmt.Sprintf("%d/%d", crashed, len(samples)), strings.Join(s.loads[benchKey(rate, kind)], "; "))
		}
	}
	fmt.Fprintln(w, "\nPasses over memory (QEMU's dirty-sync-count) of each run; * marks a run after which the guest crashed")
	for _, rate := range rates {
		for _, kind := range []string{benchCasePlain, benchCasePlainTLS, benchCaseCCLM} {
			samples := s.samples[benchKey(rate, kind)]
			if len(samples) == 0 {
				continue
			}
			var each []string
			for _, sample := range samples {
				mark := ""
				if sample.crashed {
					mark = "*"
				}
				each = append(each, fmt.Sprintf("%d%s", sample.passes, mark))
			}
			fmt.Fprintf(w, "  dirty %-4g %-10s %s\n", rate, kind, strings.Join(each, " "))
		}
	}
	fmt.Fprintln(w, "\nRatios cclm / plain QEMU (aim: total <= 1.3x, downtime <= 1.5x)")
	for _, rate := range rates {
		c := s.samples[benchKey(rate, benchCaseCCLM)]
		if len(c) == 0 {
			continue
		}
		cm := benchMedians(c)
		for _, kind := range []string{benchCasePlain, benchCasePlainTLS} {
			p := s.samples[benchKey(rate, kind)]
			if len(p) == 0 {
				continue
			}
			pm := benchMedians(p)
			fmt.Fprintf(w, "dirty %g MiB/s, cclm / %-9s total %5.2fx  downtime %5.2fx  QEMU total %5.2fx  bytes %5.2fx\n",
				rate, kind+":", benchRatio(cm.total, pm.total), benchRatio(cm.downtime, pm.downtime), benchRatio(cm.qemuTotal, pm.qemuTotal),
				float64(cm.bytes)/max(float64(pm.bytes), 1))
		}
	}
	for _, rate := range rates {
		for _, kind := range []string{benchCasePlain, benchCasePlainTLS, benchCaseCCLM} {
			s.printTimeline(w, rate, kind)
		}
	}
}

// printTimeline prints when each milestone of a case happened: the median
// over the runs, its distance from the previous milestone, and each run's.
func (s *benchState) printTimeline(w *os.File, rate float64, kind string) {
	c := s.samples[benchKey(rate, kind)]
	if len(c) == 0 {
		return
	}
	start := "the target QEMU's launch"
	if kind == benchCaseCCLM {
		start = "VMIM creation; first seen by a watch"
	}
	fmt.Fprintf(w, "\n%s at dirty %g MiB/s: milestones in ms after %s (median, +since the previous, [each run])\n", kind, rate, start)
	var order []string
	byWhat := map[string][]time.Duration{}
	for _, sample := range c {
		for _, mk := range sample.timeline {
			if _, ok := byWhat[mk.what]; !ok {
				order = append(order, mk.what)
			}
			byWhat[mk.what] = append(byWhat[mk.what], mk.at)
		}
	}
	slices.SortStableFunc(order, func(x, y string) int { return int(benchMedian(byWhat[x]) - benchMedian(byWhat[y])) })
	var previous time.Duration
	for _, what := range order {
		med := benchMedian(byWhat[what])
		var each []string
		for _, at := range byWhat[what] {
			each = append(each, fmt.Sprintf("%.0f", benchMs(at)))
		}
		fmt.Fprintf(w, "  %7.0f  (+%5.0f)  %-58s [%s]\n", benchMs(med), benchMs(med-previous), what, strings.Join(each, " "))
		previous = med
	}
	if kind != benchCaseCCLM {
		return
	}
	for i, sample := range c {
		var phases []string
		for _, p := range sample.phases {
			phases = append(phases, fmt.Sprintf("%s %s", p.Phase, p.PhaseTransitionTimestamp.Format("15:04:05")))
		}
		fmt.Fprintf(w, "  run %d status.phaseTransitionTimestamps (1 s resolution): %s; migrationState end-start %s\n",
			i+1, strings.Join(phases, ", "), sample.statusDataPath)
	}
}

func benchRatio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
