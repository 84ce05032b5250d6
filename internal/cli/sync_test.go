package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/lab"
)

func TestSyncFlagsNameTheFlagToFix(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{nil, "--listen-address is empty"},
		{[]string{"--listen-address", "0.0.0.0"}, "--listen-address"},
		{[]string{"--listen-address", "migration0"}, "--listen-address"},
		{[]string{"--lab-id", "l1234"}, "--netns-node"},
		{[]string{"--netns-node", "ocp7-sync"}, "--lab-id"},
		{[]string{"--lab-id", "l1234", "--netns-node", "ocp7-sync", "--listen-address", "192.168.201.1"}, "--listen-address and --lab-id"},
	}
	for _, tc := range cases {
		cmd := newRootCommand()
		cmd.SetArgs(append([]string{"sync", "--kubeconfig", "/nonexistent"}, tc.args...))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("cclm sync %v: error %v, want one naming %s", tc.args, err, tc.flag)
		}
	}
}

func TestSyncFlagsAccepted(t *testing.T) {
	for _, flags := range []syncFlags{
		{listenAddress: "192.168.201.1"},
		{listenAddress: "fd00::1"},
		{labID: "l1234", netnsNode: "ocp7-sync"},
	} {
		if err := flags.check(); err != nil {
			t.Errorf("%+v: %v", flags, err)
		}
	}
}

func TestSyncDefaults(t *testing.T) {
	cmd := newSyncCommand()
	for flag, want := range map[string]string{
		"namespace": "openshift-cnv", "leader-elect": "true", "peer-deadline": "1m0s", "listen-address": "", "cluster-name": "",
	} {
		if got := cmd.Flags().Lookup(flag).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", flag, got, want)
		}
	}
}

func TestLabStatusShowsTheSyncAddresses(t *testing.T) {
	var out bytes.Buffer
	printLabStatus(&out, &lab.Status{Dir: "d", Running: true, Clusters: []lab.ClusterStatus{
		{Name: "ocp7", APIReady: true, SynchronizationAddresses: []string{"192.168.201.1:9185"}},
		{Name: "ocp1", APIReady: true},
	}})
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "SYNC ADDRESS") || !strings.Contains(lines[2], "192.168.201.1:9185") || !strings.Contains(lines[3], "<none>") {
		t.Errorf("lab status:\n%s", out.String())
	}
}
