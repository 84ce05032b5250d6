package qemu

import (
	"errors"
	"testing"
	"time"
)

func TestParseMigrationInfo(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want MigrationProgress
	}{
		{
			name: "no migration yet",
			raw:  `{}`,
			want: MigrationProgress{Status: MigrationNone, PageSize: 4096},
		},
		{
			name: "setup",
			raw:  `{"status": "setup"}`,
			want: MigrationProgress{Status: MigrationSetup, PageSize: 4096},
		},
		{
			// Captured from QEMU 7.2 mid-migration, multifd on.
			name: "active",
			raw: `{"expected-downtime": 300, "status": "active", "setup-time": 1, "total-time": 232, "cpu-throttle-percentage": 20,
				"ram": {"total": 134750208, "postcopy-requests": 0, "dirty-sync-count": 1, "multifd-bytes": 32311872,
				"pages-per-second": 77590, "downtime-bytes": 0, "page-size": 4096, "remaining": 85192704, "postcopy-bytes": 0,
				"mbps": 1546.3881818181817, "transferred": 32350172, "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 38300,
				"duplicate": 4253, "dirty-pages-rate": 120, "skipped": 0, "normal-bytes": 32137216, "normal": 7846}}`,
			want: MigrationProgress{
				Status: MigrationActive, TotalBytes: 134750208, TransferredBytes: 32350172, RemainingBytes: 85192704,
				DirtyPagesRate: 120, DirtyBytesRate: 120 * 4096, PageSize: 4096, Iteration: 1,
				DuplicatePages: 4253, NormalPages: 7846, MultifdBytes: 32311872, Mbps: 1546.3881818181817,
				ExpectedDowntime: 300 * time.Millisecond, SetupTime: time.Millisecond, TotalTime: 232 * time.Millisecond,
				CPUThrottlePercent: 20,
			},
		},
		{
			name: "completed",
			raw: `{"status": "completed", "setup-time": 1, "downtime": 18, "total-time": 534,
				"ram": {"total": 134750208, "dirty-sync-count": 3, "page-size": 4096, "remaining": 0, "transferred": 73596555,
				"mbps": 1106.5, "duplicate": 16417, "normal": 17794, "multifd-bytes": 73448704}}`,
			want: MigrationProgress{
				Status: MigrationCompleted, TotalBytes: 134750208, TransferredBytes: 73596555, PageSize: 4096, Iteration: 3,
				DuplicatePages: 16417, NormalPages: 17794, MultifdBytes: 73448704, Mbps: 1106.5,
				Downtime: 18 * time.Millisecond, SetupTime: time.Millisecond, TotalTime: 534 * time.Millisecond,
			},
		},
		{
			name: "failed",
			raw:  `{"status": "failed", "error-desc": "Unable to write to socket: Connection reset by peer"}`,
			want: MigrationProgress{Status: MigrationFailed, PageSize: 4096, Error: "Unable to write to socket: Connection reset by peer"},
		},
		{
			name: "huge pages",
			raw:  `{"status": "active", "ram": {"page-size": 2097152, "dirty-pages-rate": 3}}`,
			want: MigrationProgress{Status: MigrationActive, PageSize: 2097152, DirtyPagesRate: 3, DirtyBytesRate: 3 * 2097152},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMigrationInfo([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if _, err := ParseMigrationInfo([]byte(`{"status": 3}`)); err == nil {
		t.Error("a malformed answer parsed")
	}
}

// TestMigrationClock: QEMU 7.2 reports total-time and downtime 0 after a
// pre-switchover pause; the events' timestamps fill them.
func TestMigrationClock(t *testing.T) {
	var clock migrationClock
	t0 := time.Unix(1000, 0)
	for _, e := range []Event{
		{Name: "STOP", Time: t0.Add(-time.Second)}, // before the migration: ignored
		{Name: "MIGRATION", Data: map[string]any{"status": "setup"}, Time: t0},
		{Name: "MIGRATION", Data: map[string]any{"status": "active"}, Time: t0.Add(time.Millisecond)},
		{Name: "STOP", Time: t0.Add(400 * time.Millisecond)},
		{Name: "MIGRATION", Data: map[string]any{"status": "pre-switchover"}, Time: t0.Add(401 * time.Millisecond)},
		{Name: "MIGRATION", Data: map[string]any{"status": "completed"}, Time: t0.Add(480 * time.Millisecond)},
	} {
		clock.observe(e)
	}
	p := MigrationProgress{Status: MigrationCompleted}
	clock.fillTimes(&p)
	if p.TotalTime != 480*time.Millisecond || p.Downtime != 80*time.Millisecond || !p.TimesFromEvents {
		t.Errorf("filled %+v", p)
	}
	reported := MigrationProgress{Status: MigrationCompleted, TotalTime: time.Second, Downtime: 20 * time.Millisecond}
	clock.fillTimes(&reported)
	if reported.TotalTime != time.Second || reported.Downtime != 20*time.Millisecond || reported.TimesFromEvents {
		t.Errorf("QEMU's own figures were overwritten: %+v", reported)
	}
	active := MigrationProgress{Status: MigrationActive}
	clock.fillTimes(&active)
	if active.TotalTime != 0 {
		t.Errorf("times filled for an active migration: %+v", active)
	}
}

func TestMigrationCapabilitiesAndParameters(t *testing.T) {
	capState := func(caps []MigrationCapability) map[string]bool {
		m := map[string]bool{}
		for _, c := range caps {
			m[c.Capability] = c.State
		}
		return m
	}
	defaults := DefaultMigrationParams()
	defaults.PauseBeforeSwitchover = true
	src := capState(defaults.migrationCapabilities(RoleSource, true))
	want := map[string]bool{"events": true, "multifd": true, "postcopy-ram": false, "postcopy-preempt": false, "auto-converge": false, "pause-before-switchover": true, "validate-uuid": true}
	for name, state := range want {
		if src[name] != state {
			t.Errorf("source capability %s = %v, want %v", name, src[name], state)
		}
	}
	dst := capState(defaults.migrationCapabilities(RoleTarget, false))
	if dst["multifd"] != src["multifd"] || dst["pause-before-switchover"] || dst["validate-uuid"] {
		t.Errorf("target capabilities %v: multifd must match the source's, the rest is the source's business", dst)
	}
	if caps := capState(DefaultMigrationParams().migrationCapabilities(RoleTarget, false)); !caps["multifd"] {
		t.Errorf("a target of a multifd migration must enable multifd: %v", caps)
	}
	single := DefaultMigrationParams()
	single.Multifd = false
	if caps, params := capState(single.migrationCapabilities(RoleSource, false)), single.migrationParameters(RoleSource); caps["multifd"] || params["zero-page-detection"] != "legacy" {
		t.Errorf("one stream: multifd %v, zero-page-detection %v; want off and legacy", caps["multifd"], params["zero-page-detection"])
	}

	postcopy := DefaultMigrationParams()
	postcopy.PostCopy, postcopy.AutoConverge = true, true
	caps := capState(postcopy.migrationCapabilities(RoleSource, false))
	if caps["multifd"] || !caps["postcopy-ram"] || !caps["postcopy-preempt"] || !caps["auto-converge"] {
		t.Errorf("post-copy capabilities %v: multifd must be off (QEMU 10.0 refuses the pair), postcopy with preempt and auto-converge on", caps)
	}
	if params := postcopy.migrationParameters(RoleTarget); params["zero-page-detection"] != "legacy" {
		t.Errorf("post-copy without multifd must detect zero pages in the migration thread: %v", params)
	}

	params := defaults.migrationParameters(RoleSource)
	wantParams := map[string]any{
		"multifd-channels": 2, "zero-page-detection": "multifd", "tls-creds": "", "tls-hostname": "",
		"max-bandwidth": UnlimitedBandwidth, "downtime-limit": int64(300),
		"cpu-throttle-initial": 20, "cpu-throttle-increment": 10,
	}
	if len(params) != len(wantParams) {
		t.Errorf("source parameters %v, want %v", params, wantParams)
	}
	for k, v := range wantParams {
		if params[k] != v {
			t.Errorf("source parameter %s = %v (%T), want %v (%T)", k, params[k], params[k], v, v)
		}
	}

	limited := DefaultMigrationParams()
	limited.BandwidthBytesPerSecond = 16 << 20
	if caps := capState(limited.migrationCapabilities(RoleSource, false)); caps["multifd"] {
		t.Errorf("a bandwidth limit must turn multifd off (QEMU 10.0 does not limit its channels): %v", caps)
	}

	tuned := MigrationParams{Multifd: true, MultifdChannels: 8, TLS: true, BandwidthBytesPerSecond: 64 << 20, DowntimeLimit: time.Second}
	params = tuned.migrationParameters(RoleSource)
	if params["tls-creds"] != "cclm-tls-client" || params["max-bandwidth"] != int64(64<<20) || params["downtime-limit"] != int64(1000) || params["multifd-channels"] != 8 {
		t.Errorf("tuned source parameters %v", params)
	}
	target := tuned.migrationParameters(RoleTarget)
	if len(target) != 3 || target["tls-creds"] != "cclm-tls-server" || target["multifd-channels"] != 8 || target["zero-page-detection"] != "legacy" {
		t.Errorf("target parameters %v: only the stream format and TLS belong there", target)
	}
}

func TestMigrationErrorMessage(t *testing.T) {
	err := error(&MigrationError{Domain: "vm1", Progress: MigrationProgress{Status: MigrationFailed, Error: "Connection reset"}})
	if got := err.Error(); got != "migration of vm1 failed: Connection reset" {
		t.Errorf("message %q", got)
	}
	var me *MigrationError
	if !errors.As(err, &me) || me.Progress.Status != MigrationFailed {
		t.Error("not a *MigrationError")
	}
}

func TestNBDClientNode(t *testing.T) {
	node, err := nbdClientNode(NBDTarget{Addr: "[fd00::2]:10809", TLS: true}, "rootdisk")
	if err != nil {
		t.Fatal(err)
	}
	server := node["server"].(map[string]any)
	if server["host"] != "fd00::2" || server["port"] != "10809" || node["export"] != "rootdisk" ||
		node["node-name"] != "nbd-rootdisk" || node["tls-creds"] != "cclm-tls-client" ||
		node["detect-zeroes"] != "unmap" || node["discard"] != "unmap" {
		t.Errorf("NBD node %v", node)
	}
	if _, err := nbdClientNode(NBDTarget{Addr: "no-port"}, "d"); err == nil {
		t.Error("an address without port was accepted")
	}
	args := mirrorArgs(NBDTarget{SynchronousWrites: true, BandwidthBytesPerSecond: 1 << 20}, "rootdisk")
	if args["job-id"] != "mirror-rootdisk" || args["device"] != "disk-rootdisk" || args["target"] != "nbd-rootdisk" ||
		args["sync"] != "full" || args["copy-mode"] != "write-blocking" || args["speed"] != int64(1<<20) {
		t.Errorf("mirror args %v", args)
	}
}
