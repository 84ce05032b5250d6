package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Namespace is a named network namespace of a lab (the fabric, a node or a
// client), bind-mounted at /run/netns/<name>. It holds no open file: every
// operation opens the namespace by path, so a Namespace needs no Close and
// may be copied or rebuilt from names after a restart.
type Namespace struct {
	name  string // file name under /run/netns, e.g. "cclm.default.ocp7-worker-0"
	label string // what messages call it, e.g. "node ocp7-worker-0"
}

// NetnsName is the namespace's name, as `ip netns list` shows it and
// `ip netns exec` takes it.
func (ns *Namespace) NetnsName() string { return ns.name }

// Path is the namespace's bind mount; its inode number is the namespace's,
// the same as /proc/<pid>/ns/net of a process inside it.
func (ns *Namespace) Path() string { return filepath.Join(netnsDir, ns.name) }

// String says which namespace this is, for messages.
func (ns *Namespace) String() string { return ns.label }

// Do runs fn with the calling goroutine locked to its OS thread and that
// thread switched into the namespace; afterwards the thread is switched
// back and unlocked. Whatever fn creates on this thread (sockets, links,
// taps, child processes) belongs to the namespace. Goroutines that fn
// starts run on other threads, in the host's namespace.
//
// If switching back fails, Do leaves the thread locked: the Go runtime ends
// a locked thread when its goroutine exits, so the tainted thread dies
// instead of running other goroutines in the wrong namespace.
func (ns *Namespace) Do(fn func() error) error {
	target, err := netns.GetFromPath(ns.Path())
	if err != nil {
		return ns.openError(err)
	}
	defer target.Close()
	return onSwitchedThread(func() error { return netns.Set(target) }, fn)
}

// Listen opens a listener inside the namespace (see net.Listen). A socket
// stays in the namespace it was created in, so the listener may be served
// from any goroutine. Use IP addresses: name resolution may run elsewhere.
func (ns *Namespace) Listen(network, address string) (net.Listener, error) {
	var listener net.Listener
	err := ns.Do(func() (err error) {
		listener, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, address, ns, err)
	}
	return listener, nil
}

// ListenPacket opens a packet socket inside the namespace (see
// net.ListenPacket).
func (ns *Namespace) ListenPacket(network, address string) (net.PacketConn, error) {
	var conn net.PacketConn
	err := ns.Do(func() (err error) {
		conn, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, address, ns, err)
	}
	return conn, nil
}

// Dial connects from inside the namespace (see net.Dial). Use an IP
// address: with a host name the resolver may open its sockets on other
// threads, outside the namespace.
func (ns *Namespace) Dial(network, address string) (net.Conn, error) {
	return ns.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context, e.g. for grpc.WithContextDialer.
// With one IP address the dialer creates its socket on the calling
// goroutine, hence inside the namespace.
func (ns *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() (err error) {
		var dialer net.Dialer
		conn, err = dialer.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, address, ns, err)
	}
	return conn, nil
}

// StartProcess starts cmd with the namespace as its network namespace.
// This works because os/exec forks on the calling goroutine's OS thread
// (syscall.forkExec clones the current thread) and a child inherits the
// namespaces of the thread that forked it; Do locks that thread and
// switches it in for the duration of cmd.Start.
//
// Only the network namespace changes: the child sees the host's /sys, so
// tools that read /sys/class/net show the host's links; netlink-based
// tools (ip, QEMU's tap setup) see the namespace's.
//
// cmd.SysProcAttr.Pdeathsig is tied to the thread that forked, not the
// process. Do hands that thread back to the runtime, which keeps it until
// the process ends, so the signal comes when the parent dies, as usual;
// only if switching the thread back failed (see Do) does the thread end
// with the goroutine, and the child gets its Pdeathsig then.
func (ns *Namespace) StartProcess(cmd *exec.Cmd) error {
	if err := ns.Do(cmd.Start); err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, ns, err)
	}
	return nil
}

// openError explains why the namespace could not be opened.
func (ns *Namespace) openError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist (no namespace %s)", ns, ns.Path())
	}
	return fmt.Errorf("open the namespace of %s: %w", ns, err)
}

// onSwitchedThread locks the calling goroutine to its thread, lets enter
// move the thread into another network namespace, runs fn, and moves the
// thread back. See Do for why a failed return leaves the thread locked.
func onSwitchedThread(enter, fn func() error) (err error) {
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open the thread's network namespace: %w", err)
	}
	defer origin.Close()
	defer func() {
		// Runs even if fn panics, so the panic does not leave a thread in
		// the lab's namespace behind for other goroutines.
		if restoreErr := netns.Set(origin); restoreErr != nil {
			err = errors.Join(err, fmt.Errorf("switch the thread back to its network namespace (the thread is discarded): %w", restoreErr))
			return
		}
		runtime.UnlockOSThread()
	}()
	if err := enter(); err != nil {
		return fmt.Errorf("switch the thread's network namespace: %w", err)
	}
	return fn()
}

// isNamespaceMount reports whether path is a mounted network namespace, not
// just the empty file a crash may leave behind.
func isNamespaceMount(path string) bool {
	var stat unix.Statfs_t
	return unix.Statfs(path, &stat) == nil && stat.Type == unix.NSFS_MAGIC
}

// createNamespace makes the named namespace unless it exists already, and
// reports whether it made it.
func createNamespace(name string) (created bool, err error) {
	path := filepath.Join(netnsDir, name)
	if isNamespaceMount(path) {
		return false, nil
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return false, err
	}
	// The mount point; a leftover one from a crash is reused.
	file, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return false, fmt.Errorf("create namespace %s: %w", name, err)
	}
	file.Close()
	if err := mountNewNamespace(path); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("create namespace %s: %w", name, err)
	}
	return true, nil
}

// mountNewNamespace unshares a fresh network namespace on a locked thread
// and bind-mounts it at path, which keeps it alive once the thread leaves.
func mountNewNamespace(path string) error {
	enterNew := func() error { return unix.Unshare(unix.CLONE_NEWNET) }
	return onSwitchedThread(enterNew, func() error {
		threadNamespace := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(threadNamespace, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", path, err)
		}
		return nil
	})
}

// deleteNamespace unmounts and removes a named namespace; a missing one is
// fine. The kernel dismantles the namespace, and with it every link inside
// (veth peers included), once nothing else refers to it: a process or an
// open socket still inside keeps it, and its links, alive.
func deleteNamespace(name string) error {
	path := filepath.Join(netnsDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && err != unix.EINVAL && err != unix.ENOENT { // EINVAL: not mounted
		return fmt.Errorf("delete namespace %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// namespaceNames lists the named namespaces.
func namespaceNames() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names, nil
}
