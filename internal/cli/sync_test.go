package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-logr/logr"

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
	cmd := newSyncCommand(&logOptions{})
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

// Components log one structured record per line, as text or JSON, with
// -v raising what logr's V levels show; a wrong flag says what to use.
func TestComponentLogger(t *testing.T) {
	var out bytes.Buffer
	logs := &logOptions{format: logJSON, verbosity: 1}
	logger, err := logs.logger(&out, "cluster", "ocp7")
	if err != nil {
		t.Fatal(err)
	}
	sink := logr.FromSlogHandler(logger.Handler())
	sink.V(1).Info("shown at -v 1", "migration", "ns/vm")
	sink.V(2).Info("hidden at -v 1")
	var record map[string]any
	if err := json.Unmarshal(out.Bytes(), &record); err != nil || record["msg"] != "shown at -v 1" || record["cluster"] != "ocp7" || record["migration"] != "ns/vm" {
		t.Errorf("JSON record %q: %v", out.String(), err)
	}
	if _, err := (&logOptions{format: "yaml"}).logger(&out); err == nil || !strings.Contains(err.Error(), "use text or json") {
		t.Errorf("--log-format yaml: %v", err)
	}
}
