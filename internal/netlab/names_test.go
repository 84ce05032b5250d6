package netlab

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestHashedLinkNameFitsIFNAMSIZ(t *testing.T) {
	longLab := strings.Repeat("l", 32)
	longNode := strings.Repeat("n", 63)
	for _, role := range []string{migrationPortRole, vmPortRole} {
		name := hashedLinkName(role, longLab, longNode)
		if len(name) > maxLinkNameLen {
			t.Errorf("hashedLinkName(%q, …) = %q: %d characters, more than %d", role, name, len(name), maxLinkNameLen)
		}
		if err := validateLinkName(name); err != nil {
			t.Errorf("hashedLinkName(%q, …) = %q: %v", role, name, err)
		}
	}
}

func TestHashedLinkNameIsStable(t *testing.T) {
	// Golden values: a lab made by an older build must be found (and
	// cleaned up) by a newer one, so the derivation must never change.
	golden := map[[3]string]string{
		{"mig", "default", "ocp7-worker-0"}: "mig-e141d53d",
		{"vm", "default", "ocp7-worker-0"}:  "vm-e141d53d",
		{"mig", "default", "ocp1-worker-0"}: "mig-1c1f460e",
	}
	for input, want := range golden {
		if got := hashedLinkName(input[0], input[1], input[2]); got != want {
			t.Errorf("hashedLinkName(%q, %q, %q) = %q, want %q", input[0], input[1], input[2], got, want)
		}
	}
}

func TestHashedLinkNameIsUniquePerLabAndNode(t *testing.T) {
	seen := map[string]string{}
	for _, lab := range []string{"default", "t-1", "t-2", "a", "a-b"} {
		for i := range 2000 {
			node := fmt.Sprintf("ocp%d-worker-%d", i%2, i)
			name := hashedLinkName(migrationPortRole, lab, node)
			owner := lab + "/" + node
			if previous, taken := seen[name]; taken {
				t.Fatalf("%q derived for both %s and %s", name, previous, owner)
			}
			seen[name] = owner
		}
	}
	// The separator keeps ("a", "b/c") and ("a/b", "c") apart; validation
	// forbids "/" anyway, this guards the derivation itself.
	if hashedLinkName("vm", "a-b", "c") == hashedLinkName("vm", "a", "b-c") {
		t.Error(`("a-b", "c") and ("a", "b-c") derive the same name`)
	}
}

func TestNamespaceNamesKeepLabsApart(t *testing.T) {
	if got, want := fabricNamespaceName("default"), "cclm.default"; got != want {
		t.Errorf("fabricNamespaceName = %q, want %q", got, want)
	}
	if got, want := nodeNamespaceName("default", "ocp7-worker-0"), "cclm.default.ocp7-worker-0"; got != want {
		t.Errorf("nodeNamespaceName = %q, want %q", got, want)
	}
	// Lab "a" must not claim the namespaces of lab "a-b" or "ab".
	for _, other := range []string{nodeNamespaceName("a-b", "x"), nodeNamespaceName("ab", "x"), fabricNamespaceName("a-b")} {
		if strings.HasPrefix(other, labNamespacePrefix("a")) {
			t.Errorf("lab a's prefix %q matches %q", labNamespacePrefix("a"), other)
		}
	}
	if !strings.HasPrefix(nodeNamespaceName("a", "x.y"), labNamespacePrefix("a")) {
		t.Error("a node with dots in its name is not found by its lab's prefix")
	}
}

func TestValidation(t *testing.T) {
	for _, valid := range []string{"default", "t-1a2b3c4d", "a", strings.Repeat("x", 32)} {
		if err := validateLabID(valid); err != nil {
			t.Errorf("validateLabID(%q): %v", valid, err)
		}
	}
	for _, invalid := range []string{"", "a.b", "A", "-a", "a-", "a/b", strings.Repeat("x", 33)} {
		if err := validateLabID(invalid); err == nil {
			t.Errorf("validateLabID(%q) accepted it", invalid)
		}
	}
	for _, valid := range []string{"ocp7-worker-0", "worker.example.com", "n"} {
		if err := validateNodeName(valid); err != nil {
			t.Errorf("validateNodeName(%q): %v", valid, err)
		}
	}
	for _, invalid := range []string{"", "Worker", "a/b", "a_b", ".a", strings.Repeat("x", 64)} {
		if err := validateNodeName(invalid); err == nil {
			t.Errorf("validateNodeName(%q) accepted it", invalid)
		}
	}
	for _, invalid := range []string{"", "sixteen-chars-xx", "a/b", "a b", "..", "a:b"} {
		if err := validateLinkName(invalid); err == nil {
			t.Errorf("validateLinkName(%q) accepted it", invalid)
		}
	}
}

func TestPrefixConversionKeepsHostBits(t *testing.T) {
	for _, text := range []string{"192.168.201.1/24", "192.168.201.129/24", "fd00::5/64"} {
		prefix := netip.MustParsePrefix(text)
		back, ok := prefixOf(ipNetOf(prefix))
		if !ok || back != prefix {
			t.Errorf("%s → %v → %v (ok=%v)", prefix, ipNetOf(prefix), back, ok)
		}
	}
}
