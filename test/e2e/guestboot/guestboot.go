//go:build linux

// Package guestboot builds the cclm guest image (guest/build.sh) and boots
// it under QEMU for integration tests: TCG only, a virtio-serial agent
// port, an optional raw data disk and user-mode networking with the guest's
// echo port forwarded to loopback.
package guestboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

// DataDiskSerial is the serial the data disk gets; the agent finds the disk
// by it (DiskArgs.Disk).
const DataDiskSerial = "data"

// Image is a built guest image.
type Image struct {
	Kernel string // vmlinuz, as Debian ships it
	Initrd string // initramfs.img
	// PVHKernel is the same kernel uncompressed (vmlinux): QEMU enters it
	// directly through its PVH entry point, skipping the xz decompression
	// that takes TCG seconds. Use it as Kernel to boot faster.
	PVHKernel string
}

// RepoRoot returns the module root: the first directory upwards from the
// working directory (a test's package directory) holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// EnsureImage runs guest/build.sh into REPO/bin/guest, which does nothing
// when the image is current, and returns the image.
func EnsureImage(ctx context.Context) (Image, error) {
	root, err := RepoRoot()
	if err != nil {
		return Image{}, err
	}
	outDir := filepath.Join(root, "bin", "guest")
	build := exec.CommandContext(ctx, "bash", filepath.Join(root, "guest", "build.sh"), outDir)
	build.Dir = root
	if output, err := build.CombinedOutput(); err != nil {
		return Image{}, fmt.Errorf("guest/build.sh %s: %w\n%s", outDir, err, output)
	}
	return Image{
		Kernel:    filepath.Join(outDir, "vmlinuz"),
		Initrd:    filepath.Join(outDir, "initramfs.img"),
		PVHKernel: filepath.Join(outDir, "vmlinux"),
	}, nil
}

// Config describes one VM.
type Config struct {
	Image Image
	// Dir holds the VM's sockets and logs; keep its path short (unix
	// socket paths are limited to 107 bytes).
	Dir       string
	MemoryMiB int // default 128
	// DataDisk is a raw image attached as virtio-blk with serial
	// DataDiskSerial; empty for none.
	DataDisk string
	// IP is the guest's cclm.ip: "ADDR/PREFIX", "dhcp" or "" (no network
	// configured). User-mode networking hands out 10.0.2.15/24, gateway
	// 10.0.2.2.
	IP string
	// EchoHostPort, if not 0, forwards 127.0.0.1:EchoHostPort to the
	// guest's echo port.
	EchoHostPort int
	Hostname     string
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Incoming makes this VM a live-migration target: it waits for the
	// migration stream (on DIR/migrate.sock) instead of booting.
	Incoming bool
}

// VM is a running QEMU.
type VM struct {
	AgentSocket  string // the virtio-serial agent port's chardev
	SerialSocket string // the serial console (ttyS0)
	QMPSocket    string
	ConsoleLog   string // everything the serial console printed
	QEMULog      string // QEMU's own stdout and stderr
	Started      time.Time

	cmd      *exec.Cmd
	incoming string // migration URI this VM listens on, if a target
	exited   chan struct{}
	waitErr  error
}

// Start boots the VM. Stop or Kill it when done: QEMU also dies with the
// calling thread (PR_SET_PDEATHSIG) so an interrupted test leaves none.
func Start(cfg Config) (*VM, error) {
	vm := &VM{
		AgentSocket:  filepath.Join(cfg.Dir, "agent.sock"),
		SerialSocket: filepath.Join(cfg.Dir, "serial.sock"),
		QMPSocket:    filepath.Join(cfg.Dir, "qmp.sock"),
		ConsoleLog:   filepath.Join(cfg.Dir, "console.log"),
		QEMULog:      filepath.Join(cfg.Dir, "qemu.log"),
		exited:       make(chan struct{}),
	}
	if cfg.Incoming {
		vm.incoming = "unix:" + filepath.Join(cfg.Dir, "migrate.sock")
	}
	for _, stale := range []string{vm.AgentSocket, vm.SerialSocket, vm.QMPSocket, vm.ConsoleLog} {
		os.Remove(stale)
	}
	qemuLog, err := os.Create(vm.QEMULog)
	if err != nil {
		return nil, err
	}
	defer qemuLog.Close()
	vm.cmd = exec.Command("qemu-system-x86_64", QEMUArgs(cfg, vm)...)
	vm.cmd.Stdout, vm.cmd.Stderr = qemuLog, qemuLog
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	vm.Started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu-system-x86_64 (apt-get install qemu-system-x86): %w", err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
	}()
	return vm, nil
}

// QEMUArgs is the QEMU command line for cfg (vm gives the socket and log
// paths). -nodefaults keeps the machine to what the guest uses; the NIC's
// option ROM is dropped (romfile=) since the guest boots from -kernel, which
// also spares the ipxe-qemu package.
func QEMUArgs(cfg Config, vm *VM) []string {
	memory := cfg.MemoryMiB
	if memory == 0 {
		memory = 128
	}
	args := []string{
		"-machine", "q35", "-accel", "tcg", "-m", strconv.Itoa(memory), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", cfg.Image.Kernel, "-initrd", cfg.Image.Initrd,
		"-append", KernelCommandLine(cfg),
		"-chardev", "socket,id=serial0,path=" + vm.SerialSocket + ",server=on,wait=off,logfile=" + vm.ConsoleLog,
		"-serial", "chardev:serial0",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + vm.AgentSocket + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + guestagent.PortName,
		"-qmp", "unix:" + vm.QMPSocket + ",server=on,wait=off",
	}
	if vm.incoming != "" {
		args = append(args, "-incoming", vm.incoming)
	}
	if cfg.DataDisk != "" {
		args = append(args,
			"-drive", "file="+cfg.DataDisk+",format=raw,if=none,id=data",
			"-device", "virtio-blk-pci,drive=data,serial="+DataDiskSerial)
	}
	netdev := "user,id=net0"
	if cfg.EchoHostPort != 0 {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", cfg.EchoHostPort, guestagent.EchoPort)
	}
	return append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
}

// KernelCommandLine is the -append string: the serial console, quiet (a
// TCG guest spends seconds printing boot messages otherwise), panic=-1 with
// -no-reboot so a panicking guest ends QEMU at once, and the cclm.*
// parameters /init reads.
func KernelCommandLine(cfg Config) string {
	params := []string{"console=ttyS0", "quiet", "panic=-1"}
	if cfg.IP != "" {
		params = append(params, "cclm.ip="+cfg.IP)
		if strings.Contains(cfg.IP, "/") {
			params = append(params, "cclm.gw=10.0.2.2")
		}
	}
	if cfg.Hostname != "" {
		params = append(params, "cclm.hostname="+cfg.Hostname)
	}
	return strings.Join(append(params, cfg.KernelArgs...), " ")
}

// DialAgent connects a guest agent client, waiting for QEMU to create the
// socket.
func (vm *VM) DialAgent(ctx context.Context) (*guestagent.Client, error) {
	for {
		client, err := guestagent.Dial(ctx, vm.AgentSocket)
		if err == nil {
			return client, nil
		}
		select {
		case <-vm.exited:
			return nil, fmt.Errorf("qemu exited (%v) before its agent socket could be reached: %s", vm.waitErr, vm.tail(vm.QEMULog))
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to %s: %w (last error: %v)", vm.AgentSocket, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends QEMU with SIGTERM (an orderly exit that flushes the disk
// images), then SIGKILL if it lingers, and waits for it.
func (vm *VM) Stop() error {
	return vm.signalAndWait(syscall.SIGTERM, 10*time.Second)
}

// Kill ends QEMU with SIGKILL, as a crash would, and waits for it.
func (vm *VM) Kill() error {
	return vm.signalAndWait(syscall.SIGKILL, 10*time.Second)
}

func (vm *VM) signalAndWait(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-vm.exited:
		return nil
	default:
	}
	_ = vm.cmd.Process.Signal(sig)
	select {
	case <-vm.exited:
		return nil
	case <-time.After(grace):
	}
	_ = vm.cmd.Process.Kill()
	select {
	case <-vm.exited:
		return fmt.Errorf("qemu ignored %v for %v and was killed", sig, grace)
	case <-time.After(grace):
		return fmt.Errorf("qemu (pid %d) did not exit after SIGKILL", vm.cmd.Process.Pid)
	}
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Console returns what the serial console printed so far.
func (vm *VM) Console() string { return vm.tail(vm.ConsoleLog) }

func (vm *VM) tail(path string) string {
	const keep = 8 << 10
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago (QEMU's hostfwd takes a port number, not a listener).
func FreeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// CreateDisk creates a sparse raw disk image of sizeMiB.
func CreateDisk(path string, sizeMiB int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Migrate live-migrates the VM to target, a VM started with the same
// configuration and Config.Incoming, and waits until the migration
// completes; the source is left paused (postmigrate) for Stop.
func (vm *VM) Migrate(ctx context.Context, target *VM) error {
	if err := target.waitIncoming(ctx); err != nil {
		return err
	}
	qmp, err := DialQMP(ctx, vm.QMPSocket)
	if err != nil {
		return err
	}
	defer qmp.Close()
	if _, err := qmp.Execute(ctx, "migrate", map[string]any{"uri": target.incoming}); err != nil {
		return err
	}
	for {
		var status struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := qmp.ExecuteInto(ctx, "query-migrate", nil, &status); err != nil {
			return err
		}
		switch status.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", status.Status, status.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migration still %q: %w", status.Status, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitIncoming waits until a migration target listens for the stream.
func (vm *VM) waitIncoming(ctx context.Context) error {
	socket, ok := strings.CutPrefix(vm.incoming, "unix:")
	if !ok {
		return errors.New("not a migration target (Config.Incoming)")
	}
	for {
		if _, err := os.Stat(socket); err == nil {
			return nil
		}
		select {
		case <-vm.exited:
			return fmt.Errorf("migration target exited (%v): %s", vm.waitErr, vm.tail(vm.QEMULog))
		case <-ctx.Done():
			return fmt.Errorf("migration target never listened on %s: %w", socket, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
