package synccontroller

import (
	"encoding/json"
	"testing"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// FuzzParseVMIStatus feeds the parser what a peer could send: it must never
// panic, and what it accepts must be safe to apply on either side and
// survive a round trip, since it is written into the local VMI.
//
//	go test -fuzz FuzzParseVMIStatus ./internal/synccontroller
func FuzzParseVMIStatus(f *testing.F) {
	for _, seed := range []*kubevirtv1.VirtualMachineInstanceStatus{sourceVMIStatus(), targetVMIStatusFlat(), {}} {
		data, err := json.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{"", "null", "{}", `{"migrationState":null}`, `{"migrationState":{"targetState":{"nodeAddress":null,"directMigrationNodePorts":{"1":0}}}}`, `{"migrationState":{"failed":true}}`, `[{}]`, `{"phase":`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		status, err := parseVMIStatus(data)
		if err != nil {
			return
		}
		for _, sender := range []role{roleSource, roleTarget} {
			local := targetVMIStatusFlat()
			applyPeerStatus(local, status, sender)
			applyCancel(local)
			encoded, err := json.Marshal(local)
			if err != nil {
				t.Fatalf("the patched status does not encode: %v", err)
			}
			if _, err := parseVMIStatus(encoded); err != nil {
				t.Fatalf("the patched status does not parse back: %v\n%s", err, encoded)
			}
		}
	})
}
