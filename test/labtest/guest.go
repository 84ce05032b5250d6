package labtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/nodeagent/nodeapi"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// Guest runs a guest agent command in a VMI's guest through its node
// agent's API, as `cclm guest` does.
func (l *Lab) Guest(t testing.TB, cluster, namespace, name, cmd string, args, result any) error {
	t.Helper()
	return l.guest(t, 2*time.Minute, cluster, namespace, name, cmd, args, result)
}

func (l *Lab) guest(t testing.TB, timeout time.Duration, cluster, namespace, name, cmd string, args, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	api, err := nodeapi.DialVMI(ctx, l.RESTConfig(t, cluster), namespace, name)
	if err != nil {
		return err
	}
	return api.Guest(ctx, cmd, args, result)
}

// GuestCall is Guest that fails the test on error.
func (l *Lab) GuestCall(t testing.TB, cluster, namespace, name, cmd string, args, result any) {
	t.Helper()
	if err := l.Guest(t, cluster, namespace, name, cmd, args, result); err != nil {
		t.Fatalf("guest %s on %s/%s: %v", cmd, namespace, name, err)
	}
}

// GuestInfo asks a VMI's guest agent for its info, as `cclm guest VM
// info` does. It gives up after a few seconds: the waits that call it
// ask again.
func (l *Lab) GuestInfo(t testing.TB, cluster, namespace, name string) (*guestagent.Info, error) {
	t.Helper()
	var info guestagent.Info
	if err := l.guest(t, 10*time.Second, cluster, namespace, name, guestagent.CmdInfo, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// WaitGuestReady waits until the VM runs and its guest agent answers with
// a heartbeat, and returns the agent's info.
func (l *Lab) WaitGuestReady(t testing.TB, cluster, namespace, name string, timeout time.Duration) *guestagent.Info {
	t.Helper()
	var info *guestagent.Info
	err := Poll(pollInterval, timeout, "VM "+namespace+"/"+name+" to run with its guest agent answering", func() (bool, string) {
		var err error
		if info, err = l.GuestInfo(t, cluster, namespace, name); err != nil {
			return false, err.Error()
		}
		// An agent that just started has not ticked yet: its heartbeat
		// reading has no time to compare later readings with.
		return info.HeartbeatUnixNano > 0, "the guest agent's heartbeat has not ticked yet"
	})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, l.Describe(t, cluster, namespace), l.ConsoleTail(t, cluster, namespace, name))
	}
	return info
}

// ConsoleTail is the end of what a VMI's guest printed on its serial
// console (a kernel oops shows there), for failure messages.
func (l *Lab) ConsoleTail(t testing.TB, cluster, namespace, name string) string {
	t.Helper()
	vmi := l.VMI(t, cluster, namespace, name)
	if vmi == nil || len(vmi.UID) < 13 {
		return ""
	}
	logs, _ := filepath.Glob(filepath.Join("/run/cclm", lab.ID(l.Dir), "*", string(vmi.UID)[:13], "console.log"))
	if len(logs) == 0 {
		return "\n(no console log of the VMI found)"
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		return ""
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return "\nthe guest's console (" + logs[0] + "), last lines:\n" + string(data)
}
