package qemu_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// guestMemoryMiB keeps guests small: the machine is shared with other
// builds.
const guestMemoryMiB = 128

// guestBoot returns the guest image's boot files. The uncompressed vmlinux
// boots seconds sooner under TCG than vmlinuz (no xz decompression).
func guestBoot(t *testing.T) qemu.Boot {
	t.Helper()
	testenv.RequireBinary(t, qemu.DefaultBinary)
	testenv.RequireGuestImage(t)
	dir := filepath.Join(testenv.RepoRoot(), "bin", "guest")
	kernel := filepath.Join(dir, "vmlinux")
	if _, err := os.Stat(kernel); err != nil {
		kernel = filepath.Join(dir, "vmlinuz")
	}
	initrd := filepath.Join(dir, "initramfs.img")
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("guest image missing (%v): build it with `bash guest/build.sh bin/guest`", err)
		}
	}
	return qemu.Boot{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 quiet"}
}

// testDomain is a 128 MiB guest with the given disks, running in runDir.
func testDomain(t *testing.T, name, runDir string, disks ...qemu.Disk) qemu.Domain {
	return qemu.Domain{
		Name:      name,
		UUID:      "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
		CPU:       qemu.CPU{Model: "host-model"},
		MemoryMiB: guestMemoryMiB,
		Boot:      guestBoot(t),
		Disks:     disks,
		RunDir:    runDir,
	}
}

// launch starts QEMU and kills it when the test ends, whatever happens.
func launch(ctx context.Context, t *testing.T, dom qemu.Domain, opts qemu.Options) *qemu.Instance {
	t.Helper()
	opts.DieWithStarter = true
	in, err := qemu.Launch(ctx, dom, opts)
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, in)
	return in
}

func killAtCleanup(t *testing.T, in *qemu.Instance) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s console:\n%s\nQEMU log:\n%s", in.Domain().Name, in.ConsoleTail(30), in.LogTail(20))
		}
		if err := in.Kill(); err != nil {
			t.Error(err)
		}
	})
}

// agentReady connects to the guest agent and waits for its first answer.
func agentReady(ctx context.Context, t *testing.T, in *qemu.Instance) (*guestagent.Client, *guestagent.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	client, err := guestagent.Dial(ctx, in.Paths().Agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	info, err := client.WaitReady(ctx)
	if err != nil {
		t.Fatalf("guest agent of %s never answered: %v\nconsole:\n%s", in.Domain().Name, err, in.ConsoleTail(30))
	}
	return client, info
}

func mustInfo(ctx context.Context, t *testing.T, client *guestagent.Client) *guestagent.Info {
	t.Helper()
	info, err := client.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tlsDir writes QEMU TLS files for a loopback peer, from a CA of its own.
func tlsDir(t *testing.T, ca *pki.KeyPair, dir string) string {
	t.Helper()
	kp, err := ca.Issue(pki.CertRequest{CommonName: "node", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := kp.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := qemu.WriteTLSDir(dir, qemu.TLSMaterial{CACertPEM: ca.CertPEM(), CertPEM: kp.CertPEM(), KeyPEM: key}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// randomSuffix makes tap names unique per test run.
func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}
