package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/migrationnet"
)

// Without a migration network the synchronization controller waits for
// one, saying once per reason what it waits for, instead of exiting.
func TestSyncWaitsForTheMigrationNetwork(t *testing.T) {
	networkRetry = time.Millisecond
	t.Cleanup(func() { networkRetry = 2 * time.Second })
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	calls := 0
	iface, err := waitForMigrationNetwork(context.Background(), logger, func(context.Context) (migrationnet.Interface, error) {
		calls++
		switch calls {
		case 1, 2:
			return migrationnet.Interface{}, fmt.Errorf("%w: KubeVirt openshift-cnv/kubevirt sets no spec.configuration.migrations.network", migrationnet.ErrNoMigrationNetwork)
		case 3:
			return migrationnet.Interface{}, fmt.Errorf(`bridge "br-2001" does not exist on node ocp7-sync`)
		}
		return migrationnet.Interface{Name: "migration0", Address: netip.MustParsePrefix("192.168.201.1/24")}, nil
	})
	if err != nil || iface.Address.String() != "192.168.201.1/24" {
		t.Fatalf("%v %+v", err, iface)
	}
	if n := strings.Count(logs.String(), "waiting for"); n != 2 {
		t.Fatalf("want one line per reason (2), got %d:\n%s", n, logs.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = waitForMigrationNetwork(ctx, logger, func(context.Context) (migrationnet.Interface, error) {
		return migrationnet.Interface{}, migrationnet.ErrNoMigrationNetwork
	})
	if err == nil || !strings.Contains(err.Error(), "stopped waiting for the migration network") {
		t.Fatalf("a cancelled wait: %v", err)
	}
}
