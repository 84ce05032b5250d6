package e2e

// BenchmarkLiveMigration compares cclm's live migration, inside a cluster
// and across clusters, with plain QEMU's, in one run, for the same guest.
// See docs/benchmarks.md.

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
	"github.com/cclm-io/cclm/test/labtest"
)

var (
	benchDirtyRates = flag.String("dirty-rates", "0",
		"BenchmarkLiveMigration: comma-separated rates (MiB/s) at which the guest agent dirties memory during the migrations; 0 is an idle guest")
	benchDirtyWorkingSet = flag.Int("dirty-working-set", 24,
		"BenchmarkLiveMigration: MiB of guest memory the dirty workload cycles over (a 128 MiB guest has about 50 MiB free)")
	benchCases = flag.String("bench-cases", strings.Join(benchAllCases, ","),
		"BenchmarkLiveMigration: which cases to run, of "+strings.Join(benchAllCases, ", "))
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
	// The cross-cluster guest starts in this namespace of ocp7
	// (sourceCluster); each hop moves it to the other cluster, into
	// namespace <benchXCNamespace>-<hop>, under the same name.
	benchXCNamespace = "bench-xc"
	benchXCVMName    = "bench-xc"
	// benchXCPoll is how often the receiver's preparation is read (the
	// migration itself is watched).
	benchXCPoll = 25 * time.Millisecond
)

// The cases, in the order they run at each dirty rate.
const (
	benchCasePlain    = "plain"
	benchCasePlainTLS = "plain-tls"
	benchCaseCCLM     = "cclm"
	benchCaseXC       = "cclm-xc"
)

var benchAllCases = []string{benchCasePlain, benchCasePlainTLS, benchCaseCCLM, benchCaseXC}

// benchLabCase: the case migrates a VM of the lab (with VMIMs), not plain
// QEMU.
func benchLabCase(kind string) bool { return kind == benchCaseCCLM || kind == benchCaseXC }

// benchSample is what one migration measured.
type benchSample struct {
	// total is what a user waits for. plain: from starting the target QEMU
	// to the guest running there and the source gone (launch, configure,
	// migrate-incoming, migrate, resume, quit). cclm: from creating the
	// VMIM to seeing it Succeeded. cclm-xc: from creating the source
	// cluster's VMIM (spec.sendTo) to seeing both it and the target
	// cluster's (spec.receive) Succeeded.
	total time.Duration
	// prep (cclm-xc) is the receiver's preparation, before total: from
	// applying the receiver VM to its VMIM publishing a sync address.
	prep time.Duration
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
	// creation (cclm; cclm-xc: the source VMIM's, the receiver's
	// preparation before it).
	timeline []benchMark
	// phases (cclm) is the VMIM's status.phaseTransitionTimestamps; for
	// cclm-xc the source VMIM's, then the target VMIM's.
	phases, targetPhases []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp
	// began (cclm, cclm-xc) is when the (sending) VMIM was created, to find
	// the migration in the lab's logs; hop (cclm-xc) is "source -> target".
	began time.Time
	hop   string
}

type benchMark struct {
	what string
	at   time.Duration
}

// benchState is shared by the sub-benchmarks of one BenchmarkLiveMigration
// run: the three guests, and every sample, kept across the b.N rounds.
type benchState struct {
	ctx     context.Context
	l       *labEnv
	plain   *benchPlainGuest
	cclm    *benchCCLMGuest // in-cluster, on ocp7
	xc      *benchCCLMGuest // cross-cluster, hopping between ocp7 and ocp1
	mu      sync.Mutex
	samples map[string][]benchSample // by benchKey(rate, case)
	loads   map[string][]string      // /proc/loadavg around each case
	crashes []string                 // guests that crashed after a migration
}

func benchKey(rate float64, kind string) string { return fmt.Sprintf("%g/%s", rate, kind) }

// labGuest is the lab VM a case migrates; nil for the plain cases.
func (s *benchState) labGuest(kind string) *benchCCLMGuest {
	switch kind {
	case benchCaseCCLM:
		return s.cclm
	case benchCaseXC:
		return s.xc
	}
	return nil
}

func (s *benchState) add(key string, sample benchSample) []benchSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples[key] = append(s.samples[key], sample)
	return slices.Clone(s.samples[key])
}

func BenchmarkLiveMigration(b *testing.B) {
	testenv.RequireLab(b)
	rates, err := benchParseRates(*benchDirtyRates)
	if err != nil {
		b.Fatal(err)
	}
	cases := map[string]bool{}
	for _, c := range strings.Split(*benchCases, ",") {
		switch c = strings.TrimSpace(c); c {
		case benchCasePlain, benchCasePlainTLS, benchCaseCCLM, benchCaseXC:
			cases[c] = true
		default:
			b.Fatalf("-bench-cases: unknown case %q (use %s)", c, strings.Join(benchAllCases, ", "))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	l := benchLab(b)
	state := &benchState{ctx: ctx, l: l, samples: map[string][]benchSample{}, loads: map[string][]string{}}

	// The lab VMs boot while the plain guest does.
	if cases[benchCaseCCLM] {
		state.cclm = newBenchCCLMGuest(b, l, benchCluster, benchNamespace, benchVMName, false)
	}
	if cases[benchCaseXC] {
		// The clusters trust each other's migration CAs, as in
		// TestCrossClusterLiveMigration.
		l.ExchangeCAs(b, sourceCluster, targetCluster)
		state.xc = newBenchCCLMGuest(b, l, sourceCluster, benchXCNamespace, benchXCVMName, true)
	}
	if cases[benchCasePlain] || cases[benchCasePlainTLS] {
		state.plain = newBenchPlainGuest(ctx, b, l)
	}
	for _, g := range []*benchCCLMGuest{state.cclm, state.xc} {
		if g != nil {
			g.waitReady(b)
		}
	}
	b.Logf("lab %s (id %s); load before the runs: %s", l.Dir, lab.ID(l.Dir), benchLoadAvg())

	for _, rate := range rates {
		for _, kind := range benchAllCases {
			if !cases[kind] {
				continue
			}
			b.Run(fmt.Sprintf("dirty=%gMiBps/%s", rate, kind), func(b *testing.B) {
				state.runCase(b, rate, kind)
			})
		}
	}
	state.printReport(os.Stdout, rates)
	benchReportRSS(b, os.Stdout)
	for _, crash := range state.crashes {
		b.Error(crash)
	}
}

// runCase is one sub-benchmark: b.N migrations of one case at one rate.
func (s *benchState) runCase(b *testing.B, rate float64, kind string) {
	b.StopTimer()
	key := benchKey(rate, kind)
	// A guest that crashed late, after its last check, is replaced first.
	for _, guest := range []string{benchCasePlain, benchCaseCCLM, benchCaseXC} {
		if (benchLabCase(guest) && s.labGuest(guest) == nil) || (guest == benchCasePlain && s.plain == nil) {
			continue
		}
		if err := s.consoleCrash(guest); err != nil {
			s.mu.Lock()
			s.crashes = append(s.crashes, fmt.Sprintf("found before the %s runs at dirty %g MiB/s: %v", kind, rate, err))
			s.mu.Unlock()
			s.restartGuest(b, guest, 0)
		}
	}
	// Only the guest being measured dirties memory; the others idle.
	for _, g := range []*benchCCLMGuest{s.cclm, s.xc} {
		if g != s.labGuest(kind) {
			g.dirty(b, 0)
		}
	}
	if benchLabCase(kind) {
		s.plain.dirty(s.ctx, b, 0)
		s.labGuest(kind).dirty(b, rate)
	} else {
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
		case benchCaseXC:
			s.xc.waitMigratable(b)
			// The receiver's preparation is measured (prep) but not timed
			// by the runner: b.StartTimer comes in migrateXC, at the
			// source VMIM's creation.
			sample = s.xc.migrateXC(s.ctx, b)
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
		if kind == benchCaseXC {
			// The namespace the guest left: its VM Halted, its VMI
			// Succeeded (migrated away), no QEMU.
			s.xc.dropLeftovers(b)
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
	if kind == benchCaseXC {
		b.ReportMetric(benchMs(m.prep), "prep-ms")
	}
	if benchLabCase(kind) {
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
	if g := s.labGuest(kind); g != nil {
		for _, console := range g.consoles() {
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
	if g := s.labGuest(kind); g != nil {
		var err error
		for range 3 {
			if _, err = g.l.GuestInfo(b, g.cluster, g.namespace, g.name); err == nil {
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
	if g := s.labGuest(kind); g != nil {
		if kind == benchCaseXC {
			g.replace(b)
		} else {
			g.l.MustKubectl(b, g.cluster, "", "delete", "vmi", g.name, "-n", g.namespace, "--wait=true", "--timeout=120s")
			g.waitReady(b)
		}
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
	return &labEnv{labtest.Up(b, dir, 5*time.Minute)}
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
	labID := lab.ID(l.Dir)
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
// VirtualMachineInstanceMigrations: inside ocp7 (cclm), or from cluster to
// cluster (cclm-xc), where it lives in a new namespace after each hop.
type benchCCLMGuest struct {
	l     *labEnv
	kubes map[string]client.WithWatch // by cluster
	// Where the guest runs now.
	cluster, namespace, name string
	rate                     float64
	count                    int
	// Cross-cluster: the MAC every receiver gets, the first namespace,
	// the hops made (each namespace after the first is base-<hop>), and
	// the namespace the last hop left.
	crossCluster bool
	mac, base    string
	hops         int
	left         *benchPlace
}

// benchPlace is a cluster and a namespace in it.
type benchPlace struct{ cluster, namespace string }

func newBenchCCLMGuest(b *testing.B, l *labEnv, cluster, namespace, name string, crossCluster bool) *benchCCLMGuest {
	b.Helper()
	g := &benchCCLMGuest{l: l, kubes: map[string]client.WithWatch{}, cluster: cluster, namespace: namespace, name: name, base: namespace, crossCluster: crossCluster}
	for _, c := range []string{sourceCluster, targetCluster} {
		kube, err := client.NewWithWatch(l.RESTConfig(b, c), client.Options{Scheme: scheme.Scheme})
		if err != nil {
			b.Fatal(err)
		}
		g.kubes[c] = kube
	}
	if crossCluster {
		// What an earlier run with -bench-lab-dir may have left.
		g.deleteNamespaces(b)
		b.Cleanup(func() { g.deleteNamespaces(b) })
		g.create(b, namespace)
		return g
	}
	g.create(b, namespace)
	b.Cleanup(func() {
		_, _, _ = l.Kubectl(b, cluster, "", "delete", "vm", name, "-n", namespace, "--wait=true", "--timeout=60s")
		_, _, _ = l.Kubectl(b, cluster, "", "delete", "vmim", "--all", "-n", namespace, "--wait=false")
	})
	return g
}

// create makes the guest's VM (vmSpec's, 128 MiB) in namespace of the
// guest's cluster, with the receivers' MAC once there is one.
func (g *benchCCLMGuest) create(b *testing.B, namespace string) {
	b.Helper()
	g.namespace = namespace
	g.l.MustKubectl(b, g.cluster, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", namespace), "apply", "-f", "-")
	spec := vmSpec{name: g.name, namespace: namespace, memory: fmt.Sprintf("%dMi", benchMemoryMiB), mac: g.mac}
	g.l.MustKubectl(b, g.cluster, spec.manifest(), "apply", "-f", "-")
}

// kube is a client of the cluster the guest runs in.
func (g *benchCCLMGuest) kube() client.WithWatch { return g.kubes[g.cluster] }

func (g *benchCCLMGuest) waitReady(b *testing.B) {
	b.Helper()
	began := time.Now()
	g.l.WaitGuestReady(b, g.cluster, g.namespace, g.name, 3*time.Minute)
	vmi := g.l.VMI(b, g.cluster, g.namespace, g.name)
	b.Logf("cclm VM %s/%s on %s running with its agent after %s, on %s", g.namespace, g.name, g.cluster,
		time.Since(began).Round(100*time.Millisecond), vmi.Status.NodeName)
	if g.crossCluster && g.mac == "" {
		// Every receiver gets the MAC the controller chose for the first VM.
		labtest.WaitFor(b, "the cross-cluster VMI to report its NIC's MAC", 30*time.Second, func() (bool, string) {
			vmi = g.l.VMI(b, g.cluster, g.namespace, g.name)
			return vmi != nil && len(vmi.Status.Interfaces) > 0 && vmi.Status.Interfaces[0].MAC != "", fmt.Sprintf("%+v", vmi.Status.Interfaces)
		})
		g.mac = vmi.Status.Interfaces[0].MAC
	}
}

// waitMigratable waits until the VM can be migrated again: its guest agent
// answers on the node that owns the VMI, and no migration is in flight.
func (g *benchCCLMGuest) waitMigratable(b *testing.B) {
	b.Helper()
	err := kube.Poll(context.Background(), 250*time.Millisecond, time.Minute, "VM "+g.namespace+"/"+g.name+" on "+g.cluster+" to be migratable, its guest agent answering",
		func(ctx context.Context) (bool, string, error) {
			vmi := g.l.VMI(b, g.cluster, g.namespace, g.name)
			if vmi == nil {
				return false, "no VMI", nil
			}
			state := vmi.Status.MigrationState
			if state != nil && !state.Completed && !state.Failed {
				return false, "migration " + string(state.MigrationUID) + " still in flight", nil
			}
			for _, console := range g.consoles() {
				if err := benchGuestHealthy(console); err != nil {
					return false, "", err
				}
			}
			if !conditionTrue(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable) {
				return false, "IsMigratable not True", nil
			}
			if g.hops > 0 {
				// A receiver VM takes its restore-run-strategy after the
				// hop: let the VM controller be done with it first.
				var vm kubevirtv1.VirtualMachine
				if err := g.kube().Get(ctx, client.ObjectKey{Namespace: g.namespace, Name: g.name}, &vm); err != nil {
					return false, "", err
				}
				if strategy := vm.EffectiveRunStrategy(); strategy != kubevirtv1.RunStrategyAlways {
					return false, "VM runStrategy " + string(strategy), nil
				}
			}
			if _, err := g.l.GuestInfo(b, g.cluster, g.namespace, g.name); err != nil {
				return false, "guest agent on " + vmi.Status.NodeName + ": " + err.Error(), nil
			}
			return true, "", nil
		})
	if err != nil {
		b.Fatalf("%v\n%s", err, g.diagnose(b))
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

// consoles are the console logs of the QEMUs that run the guest's VMI.
func (g *benchCCLMGuest) consoles() []string {
	var logs []string
	for _, pid := range labtest.QEMUPids(g.namespace, g.name) {
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

// diagnose gathers what explains a guest that stopped answering: the
// VM's QEMUs, their console and log tails, and the lab's view of it.
func (g *benchCCLMGuest) diagnose(b testing.TB) string {
	var out strings.Builder
	for _, pid := range labtest.QEMUPids(g.namespace, g.name) {
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
	vmis, _, _ := g.l.Kubectl(b, g.cluster, "", "get", "vmi", g.name, "-n", g.namespace, "-o", "yaml")
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
	g.l.GuestCall(b, g.cluster, g.namespace, g.name, guestagent.CmdDirty, guestagent.DirtyArgs{RateMiBps: rate, WorkingSetMiB: *benchDirtyWorkingSet}, nil)
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
	name := fmt.Sprintf("%s-%d-%d", g.name, time.Now().Unix()%100000, g.count)
	kc, namespace := g.kube(), g.namespace
	migratedBefore := benchMigratedEvents(ctx, b, kc, namespace)

	// Watch the VMIM and the VMI from before the creation: every change is
	// stamped with the time it arrived here.
	vmimWatch, err := kc.Watch(ctx, &kubevirtv1.VirtualMachineInstanceMigrationList{}, client.InNamespace(namespace), client.MatchingFields{"metadata.name": name})
	benchMust(b, err)
	defer vmimWatch.Stop()
	vmiWatch, err := kc.Watch(ctx, &kubevirtv1.VirtualMachineInstanceList{}, client.InNamespace(namespace), client.MatchingFields{"metadata.name": g.name})
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
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: g.name},
	}
	began := time.Now()
	benchMust(b, kc.Create(ctx, vmim))
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
				if current := g.l.VMIM(b, g.cluster, namespace, name); current != nil && current.IsFinal() {
					final, finalAt = current, time.Now()
				}
			}
		case <-stuck.C:
			current := g.l.VMIM(b, g.cluster, namespace, name)
			_, _, _ = g.l.Kubectl(b, g.cluster, "", "delete", "vmim", name, "-n", namespace, "--wait=false")
			phase := "<none>"
			if current != nil && current.Status.Phase != "" {
				phase = string(current.Status.Phase)
			}
			b.Fatalf("VMIM %s/%s is still in phase %s %s after its creation: no migration controller drives VMIMs in this lab (is it wired into `cclm lab`?); run the plain cases alone with -bench-cases=plain,plain-tls",
				namespace, name, phase, benchStuckPending)
		case <-ctx.Done():
			b.Fatalf("VMIM %s/%s did not end within %s: %s", namespace, name, benchMigrationTimeout, benchDescribeVMIM(g.l.VMIM(b, g.cluster, namespace, name)))
		}
	}
	total := finalAt.Sub(began)
	if final.Status.Phase != kubevirtv1.MigrationSucceeded {
		b.Fatalf("VMIM %s/%s ended %s: %s", namespace, name, final.Status.Phase, benchDescribeVMIM(final))
	}
	// Let the VMI watch catch up with what the VMIM already shows.
	time.Sleep(100 * time.Millisecond)
	vmiWatch.Stop()
	<-vmiDone

	sample := benchSample{total: total, began: began, phases: final.Status.PhaseTransitionTimestamps}
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
	if total, _, ok := benchNewMigratedEvent(ctx, b, kc, namespace, migratedBefore); ok {
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
	if started, ok := benchQEMUStartedAt(namespace, g.name); ok && started.After(began) {
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
func benchQEMUStartedAt(namespace, name string) (time.Time, bool) {
	var newest time.Time
	for _, pid := range labtest.QEMUPids(namespace, name) {
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

// benchMigratedEvents names the "Migrated" events in namespace (the source
// node agent's, whose note carries QEMU's total time) that exist now.
func benchMigratedEvents(ctx context.Context, b *testing.B, kube client.Client, namespace string) map[string]bool {
	b.Helper()
	names := map[string]bool{}
	var events corev1.EventList
	if err := kube.List(ctx, &events, client.InNamespace(namespace)); err != nil {
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

// benchNewMigratedEvent finds the Migrated event this migration added in
// namespace and returns the QEMU total time and downtime it reports.
func benchNewMigratedEvent(ctx context.Context, b *testing.B, kube client.Client, namespace string, before map[string]bool) (total, downtime time.Duration, ok bool) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var events corev1.EventList
		if err := kube.List(ctx, &events, client.InNamespace(namespace)); err == nil {
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

// ---- cclm across clusters ----

// benchOtherCluster is where the cross-cluster guest goes from cluster.
func benchOtherCluster(cluster string) string {
	if cluster == sourceCluster {
		return targetCluster
	}
	return sourceCluster
}

// migrateXC moves the guest to the other cluster, by hand as the user
// guide says (see TestCrossClusterLiveMigration): a receiver VM with the
// same name and MAC in a new namespace there, with runStrategy
// WaitAsReceiver; a VMIM with spec.receive; once it publishes a sync
// address, a VMIM with spec.sendTo here. total runs from creating the
// sendTo VMIM to seeing both VMIMs Succeeded; prep is the receiver's part
// before it.
func (g *benchCCLMGuest) migrateXC(ctx context.Context, b *testing.B) benchSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, benchMigrationTimeout)
	defer cancel()
	from, to := benchPlace{g.cluster, g.namespace}, benchPlace{benchOtherCluster(g.cluster), fmt.Sprintf("%s-%d", g.base, g.hops+1)}
	g.hops++
	a := &attempt{
		namespace:   to.namespace,
		migrationID: fmt.Sprintf("%s-%d-%d", g.name, g.hops, time.Now().Unix()),
		sourceVMIM:  fmt.Sprintf("%s-send-%d", g.name, g.hops),
		targetVMIM:  fmt.Sprintf("%s-receive-%d", g.name, g.hops),
	}
	spec := vmSpec{name: g.name, namespace: from.namespace, memory: fmt.Sprintf("%dMi", benchMemoryMiB)}
	steps := g.l.prepareReceiver(b, to.cluster, spec, g.mac, a, benchXCPoll)

	srcKube, dstKube := g.kubes[from.cluster], g.kubes[to.cluster]
	migratedBefore := benchMigratedEvents(ctx, b, srcKube, from.namespace)
	// Watch both VMIMs and both VMIs from before the creation; every
	// change is stamped with the time it arrived here.
	w := &benchXCWatches{changed: make(chan struct{}, 1)}
	w.watch(ctx, b, srcKube, &kubevirtv1.VirtualMachineInstanceMigrationList{}, from.namespace, a.sourceVMIM, &w.srcVMIM)
	w.watch(ctx, b, dstKube, &kubevirtv1.VirtualMachineInstanceMigrationList{}, to.namespace, a.targetVMIM, &w.dstVMIM)
	w.watch(ctx, b, srcKube, &kubevirtv1.VirtualMachineInstanceList{}, from.namespace, g.name, &w.srcVMI)
	w.watch(ctx, b, dstKube, &kubevirtv1.VirtualMachineInstanceList{}, to.namespace, g.name, &w.dstVMI)
	defer w.stop()

	b.StartTimer()
	began := time.Now()
	benchMust(b, srcKube.Create(ctx, labtest.NewVMIM(from.namespace, a.sourceVMIM, g.name, a.sendTo)))
	created := time.Since(began)

	stuck := time.NewTimer(benchStuckPending)
	defer stuck.Stop()
	// The watches deliver; the poll is a fallback should one end early.
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	var srcFinal, dstFinal *kubevirtv1.VirtualMachineInstanceMigration
	var srcAt, dstAt time.Time
	for srcFinal == nil || dstFinal == nil {
		select {
		case <-w.changed:
		case <-poll.C:
			if w.ended() {
				for _, side := range []struct {
					kube      client.Client
					namespace string
					name      string
					into      *[]benchObserved
				}{{srcKube, from.namespace, a.sourceVMIM, &w.srcVMIM}, {dstKube, to.namespace, a.targetVMIM, &w.dstVMIM}} {
					var m kubevirtv1.VirtualMachineInstanceMigration
					if err := side.kube.Get(ctx, client.ObjectKey{Namespace: side.namespace, Name: side.name}, &m); err == nil {
						w.add(side.into, &m)
					}
				}
			}
		case <-stuck.C:
			if m := w.last(&w.srcVMIM); m == nil || m.Status.Phase == kubevirtv1.MigrationPending || m.Status.Phase == kubevirtv1.MigrationPhaseUnset {
				b.Fatalf("VMIM %s/%s on %s is still Pending %s after its creation: %s", from.namespace, a.sourceVMIM, from.cluster, benchStuckPending, benchDescribeVMIM(m))
			}
		case <-ctx.Done():
			b.Fatalf("the cross-cluster migration did not end within %s: source %s, target %s", benchMigrationTimeout,
				benchDescribeVMIM(w.last(&w.srcVMIM)), benchDescribeVMIM(w.last(&w.dstVMIM)))
		}
		if m, at := w.final(&w.srcVMIM); srcFinal == nil && m != nil {
			srcFinal, srcAt = m, at
		}
		if m, at := w.final(&w.dstVMIM); dstFinal == nil && m != nil {
			dstFinal, dstAt = m, at
		}
		for _, m := range []*kubevirtv1.VirtualMachineInstanceMigration{srcFinal, dstFinal} {
			if m != nil && m.Status.Phase != kubevirtv1.MigrationSucceeded {
				b.Fatalf("VMIM %s/%s ended %s%s\n%s:\n%s\n%s:\n%s", m.Namespace, m.Name, m.Status.Phase, vmimReason(m),
					from.cluster, g.l.Describe(b, from.cluster, from.namespace), to.cluster, g.l.Describe(b, to.cluster, to.namespace))
			}
		}
	}
	end := srcAt
	if dstAt.After(end) {
		end = dstAt
	}
	total := end.Sub(began)
	b.StopTimer()
	// Let the VMI watches catch up with what the VMIMs already show.
	time.Sleep(100 * time.Millisecond)
	w.stop()

	sample := benchSample{total: total, prep: steps.addressed.Sub(steps.vmCreated), began: began, hop: from.cluster + " -> " + to.cluster,
		phases: srcFinal.Status.PhaseTransitionTimestamps, targetPhases: dstFinal.Status.PhaseTransitionTimestamps}
	if state := srcFinal.Status.MigrationState; state != nil {
		if state.StartTimestamp != nil && state.EndTimestamp != nil {
			sample.statusDataPath = state.EndTimestamp.Sub(state.StartTimestamp.Time)
		}
		if p := state.Progress; p != nil {
			sample.downtime = time.Duration(p.DowntimeMs) * time.Millisecond
			sample.bytes = p.TransferredBytes
			sample.passes = p.Iteration
		}
	}
	if total, _, ok := benchNewMigratedEvent(ctx, b, srcKube, from.namespace, migratedBefore); ok {
		sample.qemuTotal = total
	}
	w.mu.Lock()
	var lastState *kubevirtv1.VirtualMachineInstanceMigrationState
	sample.timeline, sample.dataPath, lastState = benchXCTimeline(began, created, steps, srcFinal.UID, dstFinal.UID, w)
	w.mu.Unlock()
	// The source VMI's own last migrationState is the source agent's
	// final word; the VMIM's copy may predate it.
	if lastState != nil && lastState.Progress != nil && lastState.Progress.DowntimeMs > 0 {
		sample.downtime = time.Duration(lastState.Progress.DowntimeMs) * time.Millisecond
		sample.bytes = lastState.Progress.TransferredBytes
		sample.passes = lastState.Progress.Iteration
	}
	sample.timeline = append(sample.timeline, benchMark{"both VMIMs Succeeded seen (end)", total})
	if started, ok := benchQEMUStartedAt(to.namespace, g.name); ok && started.After(began) {
		sample.timeline = append(sample.timeline, benchMark{"target node agent launches QEMU (instance.json startedAt)", started.Sub(began)})
	}
	slices.SortStableFunc(sample.timeline, func(x, y benchMark) int { return int(x.at - y.at) })

	g.cluster, g.namespace, g.left = to.cluster, to.namespace, &from
	return sample
}

// benchXCWatches are the four watches of one cross-cluster migration and
// what they delivered.
type benchXCWatches struct {
	mu                               sync.Mutex
	srcVMIM, dstVMIM, srcVMI, dstVMI []benchObserved
	watches                          []watch.Interface
	done                             []chan struct{}
	closed                           int
	changed                          chan struct{}
	stopped                          bool
}

// watch starts a watch of one object, appending what it delivers to into.
func (w *benchXCWatches) watch(ctx context.Context, b *testing.B, kube client.WithWatch, list client.ObjectList, namespace, name string, into *[]benchObserved) {
	b.Helper()
	wi, err := kube.Watch(ctx, list, client.InNamespace(namespace), client.MatchingFields{"metadata.name": name})
	benchMust(b, err)
	done := make(chan struct{})
	w.watches, w.done = append(w.watches, wi), append(w.done, done)
	go func() {
		defer close(done)
		for event := range wi.ResultChan() {
			if obj, ok := event.Object.(client.Object); ok && event.Type != watch.Error {
				w.add(into, obj)
			}
		}
		w.mu.Lock()
		w.closed++
		w.mu.Unlock()
	}()
}

func (w *benchXCWatches) add(into *[]benchObserved, obj client.Object) {
	w.mu.Lock()
	*into = append(*into, benchObserved{time.Now(), obj})
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// ended: a watch ended before it was stopped.
func (w *benchXCWatches) ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed > 0 && !w.stopped
}

func (w *benchXCWatches) stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.mu.Unlock()
	for _, wi := range w.watches {
		wi.Stop()
	}
	for _, done := range w.done {
		<-done
	}
}

// last is the newest VMIM in seen, nil if none.
func (w *benchXCWatches) last(seen *[]benchObserved) *kubevirtv1.VirtualMachineInstanceMigration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*seen) == 0 {
		return nil
	}
	return (*seen)[len(*seen)-1].obj.(*kubevirtv1.VirtualMachineInstanceMigration)
}

// final is the first final VMIM in seen and when it arrived.
func (w *benchXCWatches) final(seen *[]benchObserved) (*kubevirtv1.VirtualMachineInstanceMigration, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range *seen {
		if m := o.obj.(*kubevirtv1.VirtualMachineInstanceMigration); m.IsFinal() {
			return m, o.at
		}
	}
	return nil, time.Time{}
}

// benchXCTimeline turns what the four watches saw into first-seen
// milestones, relative to the source VMIM's creation (the receiver's
// preparation comes before, negative), and the data path: the source
// VMI's migrationState of this migration first seen, to the source VMI
// seen Succeeded (its QEMU quit). It returns the source VMI's last
// migrationState too.
func benchXCTimeline(began time.Time, created time.Duration, steps receiverSteps, srcUID, dstUID types.UID, w *benchXCWatches) ([]benchMark, time.Duration, *kubevirtv1.VirtualMachineInstanceMigrationState) {
	marks := []benchMark{
		{"receiver VM applied (target cluster)", steps.vmCreated.Sub(began)},
		{"receiver VMI WaitingForSync seen", steps.waiting.Sub(began)},
		{"receiving VMIM created", steps.vmimCreated.Sub(began)},
		{"receiving VMIM's sync address seen (prep end)", steps.addressed.Sub(began)},
		{"sending VMIM create returned (source cluster)", created},
	}
	seen := map[string]bool{}
	mark := func(what string, at time.Time) time.Duration {
		if seen[what] {
			return -1
		}
		seen[what] = true
		marks = append(marks, benchMark{what, at.Sub(began)})
		return at.Sub(began)
	}
	for _, side := range []struct {
		what string
		seen []benchObserved
	}{{"source VMIM phase ", w.srcVMIM}, {"target VMIM phase ", w.dstVMIM}} {
		for _, o := range side.seen {
			m := o.obj.(*kubevirtv1.VirtualMachineInstanceMigration)
			switch m.Status.Phase {
			case kubevirtv1.MigrationPhaseUnset:
			case kubevirtv1.MigrationPending, kubevirtv1.MigrationWaitingForSync:
				// The receiving VMIM had these before: its watch may
				// deliver them late, they are no milestone.
				if m.IsDecentralizedSource() {
					mark(side.what+string(m.Status.Phase), o.at)
				}
			default:
				mark(side.what+string(m.Status.Phase), o.at)
			}
		}
	}
	var start, end time.Duration = -1, -1
	var last *kubevirtv1.VirtualMachineInstanceMigrationState
	for _, o := range w.srcVMI {
		vmi := o.obj.(*kubevirtv1.VirtualMachineInstance)
		state := vmi.Status.MigrationState
		if state == nil || state.MigrationUID != srcUID {
			continue
		}
		last = state
		if at := mark("source VMI migrationState written (Synchronizing)", o.at); at >= 0 {
			start = at
		}
		if state.TargetNodeAddress != "" {
			mark("source VMI has the target's address (synced)", o.at)
		}
		if p := state.Progress; p != nil {
			mark("source VMI: first progress (source streaming)", o.at)
			if p.DowntimeMs > 0 {
				mark("source VMI: progress with downtime (QEMU completed on the source)", o.at)
			}
		}
		if state.Completed {
			mark("source VMI completed (synced from the target)", o.at)
		}
		if vmi.Status.Phase == kubevirtv1.Succeeded {
			if at := mark("source VMI Succeeded (source QEMU quit)", o.at); at >= 0 {
				end = at
			}
		}
	}
	for _, o := range w.dstVMI {
		vmi := o.obj.(*kubevirtv1.VirtualMachineInstance)
		state := vmi.Status.MigrationState
		if state == nil || !o.at.After(began) {
			continue
		}
		if state.SourceState != nil && state.SourceState.MigrationUID == srcUID {
			mark("target VMI has the sourceState (synced)", o.at)
		}
		if state.MigrationUID != dstUID {
			continue
		}
		mark("target VMI migrationState claimed (target node chosen)", o.at)
		if state.TargetNodeAddress != "" {
			mark("target VMI targetNodeAddress (target QEMU listening)", o.at)
		}
		if vmi.Status.NodeName == state.TargetNode && state.TargetNode != "" {
			mark("target VMI nodeName = target (target resumed, took over)", o.at)
		}
		if state.Completed {
			mark("target VMI completed", o.at)
		}
	}
	if start < 0 || end < 0 {
		return marks, 0, last
	}
	return marks, end - start, last
}

// dropLeftovers deletes the namespace the last hop left: its VM Halted,
// its VMI Succeeded (migrated away), the sending VMIM; no QEMU any more.
func (g *benchCCLMGuest) dropLeftovers(b *testing.B) {
	b.Helper()
	if g.left == nil {
		return
	}
	left := *g.left
	g.left = nil
	labtest.WaitFor(b, "no QEMU left in "+left.cluster+"/"+left.namespace, 30*time.Second, func() (bool, string) {
		pids := labtest.QEMUPids(left.namespace, g.name)
		return len(pids) == 0, fmt.Sprintf("QEMUs %v", pids)
	})
	g.l.MustKubectl(b, left.cluster, "", "delete", "namespace", left.namespace, "--wait=true", "--timeout=120s")
}

// replace puts a freshly booted guest in the place of a crashed one: the
// old namespace deleted, a new VM (the same name and MAC) in the next
// namespace of the same cluster.
func (g *benchCCLMGuest) replace(b *testing.B) {
	b.Helper()
	g.dropLeftovers(b)
	g.l.MustKubectl(b, g.cluster, "", "delete", "namespace", g.namespace, "--wait=true", "--timeout=120s")
	g.hops++
	g.create(b, fmt.Sprintf("%s-%d", g.base, g.hops))
	g.waitReady(b)
}

// deleteNamespaces deletes the cross-cluster guest's namespaces, the
// first one and every base-<hop>, on both clusters.
func (g *benchCCLMGuest) deleteNamespaces(b *testing.B) {
	b.Helper()
	pattern := regexp.MustCompile(`^namespace/` + regexp.QuoteMeta(g.base) + `(-[0-9]+)?$`)
	for _, cluster := range []string{sourceCluster, targetCluster} {
		out, _, err := g.l.Kubectl(b, cluster, "", "get", "namespaces", "-o", "name")
		if err != nil {
			continue
		}
		var names []string
		for _, line := range strings.Fields(out) {
			if pattern.MatchString(line) {
				names = append(names, line)
			}
		}
		if len(names) > 0 {
			_, _, _ = g.l.Kubectl(b, cluster, "", append([]string{"delete", "--wait=true", "--timeout=120s"}, names...)...)
		}
	}
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
		prep:           benchMedian(benchPick(samples, func(s benchSample) time.Duration { return s.prep })),
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
	fmt.Fprintf(w, "%-6s %-10s %2s %18s %9s %9s %9s %9s %9s %8s %6s %9s %9s %8s  %s\n",
		"dirty", "case", "n", "total ms (min-max)", "QEMU ms", "other ms", "path ms", "down ms", "paused", "MiB sent", "passes", "status s", "prep ms", "crashed", "load (1/5/15 min, before -> after)")
	for _, rate := range rates {
		for _, kind := range benchAllCases {
			samples := s.samples[benchKey(rate, kind)]
			if len(samples) == 0 {
				continue
			}
			m := benchMedians(samples)
			lo, hi := benchMinMax(samples)
			path, paused, status, prep := "-", "-", "-", "-"
			if kind == benchCaseXC {
				prep = fmt.Sprintf("%.0f", benchMs(m.prep))
			}
			if benchLabCase(kind) {
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
			fmt.Fprintf(w, "%-6g %-10s %2d %7.0f (%4.0f-%4.0f) %9.0f %9.0f %9s %9.0f %9s %8.1f %6d %9s %9s %8s  %s\n",
				rate, kind, len(samples), benchMs(m.total), benchMs(lo), benchMs(hi), benchMs(m.qemuTotal), benchMs(other), path, benchMs(m.downtime), paused,
				float64(m.bytes)/(1<<20), m.passes, status, prep, fmt.Sprintf("%d/%d", crashed, len(samples)), strings.Join(s.loads[benchKey(rate, kind)], "; "))
		}
	}
	fmt.Fprintln(w, "\nPasses over memory (QEMU's dirty-sync-count) of each run; * marks a run after which the guest crashed")
	for _, rate := range rates {
		for _, kind := range benchAllCases {
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
	fmt.Fprintln(w, "\nRatios cclm / plain QEMU (aim: total <= 1.3x, downtime <= 1.5x), and cross-cluster / the others")
	for _, rate := range rates {
		for _, pair := range [][2]string{
			{benchCaseCCLM, benchCasePlain}, {benchCaseCCLM, benchCasePlainTLS},
			{benchCaseXC, benchCasePlain}, {benchCaseXC, benchCasePlainTLS}, {benchCaseXC, benchCaseCCLM},
		} {
			c, p := s.samples[benchKey(rate, pair[0])], s.samples[benchKey(rate, pair[1])]
			if len(c) == 0 || len(p) == 0 {
				continue
			}
			cm, pm := benchMedians(c), benchMedians(p)
			fmt.Fprintf(w, "dirty %g MiB/s, %-7s / %-9s total %5.2fx  downtime %5.2fx  QEMU total %5.2fx  bytes %5.2fx\n",
				rate, pair[0], pair[1]+":", benchRatio(cm.total, pm.total), benchRatio(cm.downtime, pm.downtime), benchRatio(cm.qemuTotal, pm.qemuTotal),
				float64(cm.bytes)/max(float64(pm.bytes), 1))
		}
	}
	for _, rate := range rates {
		for _, kind := range benchAllCases {
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
	switch kind {
	case benchCaseCCLM:
		start = "VMIM creation; first seen by a watch"
	case benchCaseXC:
		start = "the sending VMIM's creation; first seen by a watch, the receiver's preparation (polled every " + benchXCPoll.String() + ") before"
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
	if !benchLabCase(kind) {
		return
	}
	format := func(transitions []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp) string {
		var phases []string
		for _, p := range transitions {
			phases = append(phases, fmt.Sprintf("%s %s", p.Phase, p.PhaseTransitionTimestamp.Format("15:04:05")))
		}
		return strings.Join(phases, ", ")
	}
	for i, sample := range c {
		if kind == benchCaseXC {
			fmt.Fprintf(w, "  run %d, %s, created %s: status.phaseTransitionTimestamps (1 s resolution): source %s; target %s; source migrationState end-start %s\n",
				i+1, sample.hop, sample.began.Format("15:04:05.000"), format(sample.phases), format(sample.targetPhases), sample.statusDataPath)
			continue
		}
		fmt.Fprintf(w, "  run %d, created %s: status.phaseTransitionTimestamps (1 s resolution): %s; migrationState end-start %s\n",
			i+1, sample.began.Format("15:04:05.000"), format(sample.phases), sample.statusDataPath)
	}
}

func benchRatio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
