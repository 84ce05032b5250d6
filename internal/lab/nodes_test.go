package lab

import (
	"bytes"
	"context"
	"log"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/procutil"
)

// syncBuffer is a log destination that the supervisors and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The nodes are not stopped with stop here: that also removes the lab
// networks and run directories, of a lab that this test does not have.
func TestSupervisedComponentIsRestartedAndRepublished(t *testing.T) {
	n := &labNodes{}
	for _, name := range []string{"ocp7-worker-0", "ocp7-worker-1"} {
		spec := procutil.Spec{Name: name, Path: "/bin/sleep", Args: []string{"60"}, LogPath: filepath.Join(t.TempDir(), "node.log")}
		if err := n.add(spec, ComponentState{Name: name, Kind: KindNode, Cluster: "ocp7"}); err != nil {
			t.Fatal(err)
		}
	}
	var out syncBuffer
	published := make(chan []ComponentState, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		n.supervisors.Wait()
		for _, state := range n.snapshot() {
			_ = syscall.Kill(state.Pid, syscall.SIGKILL)
		}
	}()
	n.supervise(ctx, log.New(&out, "", 0), func(states []ComponentState) { published <- states })
	killed := n.snapshot()[1].Pid
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var states []ComponentState
	select {
	case states = <-published:
	case <-time.After(5 * time.Second):
		t.Fatalf("no restart published; log:\n%s", out.String())
	}
	if states[1].Pid == killed || !procutil.Alive(states[1].Pid) || states[0] != n.snapshot()[0] {
		t.Fatalf("published %+v after killing pid %d", states, killed)
	}
	want := "node agent ocp7-worker-1 ended (ocp7-worker-1: signal: killed); restarting it in 1s\n"
	if out.String() != want {
		t.Fatalf("log %q, want %q", out.String(), want)
	}
}
