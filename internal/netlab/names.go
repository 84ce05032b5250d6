package netlab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// netnsDir is where named network namespaces are bind-mounted: the same
// place as iproute2's, so `ip netns exec cclm.<lab>.<node> …` works for
// debugging and `ip netns list` shows a lab's leftovers.
const netnsDir = "/run/netns"

// namespacePrefix starts the name of every namespace netlab makes.
const namespacePrefix = "cclm."

// maxLinkNameLen is the kernel's limit on interface names (IFNAMSIZ - 1).
const maxLinkNameLen = 15

var (
	// A lab ID has no dot, so "cclm.<lab>." cannot be a prefix of another
	// lab's namespace names: lab "a" never matches lab "a-b".
	labIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	// Node names are Kubernetes node names (DNS labels joined by dots),
	// limited to 63 characters.
	nodeNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)
)

func validateLabID(labID string) error {
	if !labIDPattern.MatchString(labID) {
		return fmt.Errorf("lab ID %q is not valid: use 1 to 32 lower-case letters, digits and '-', starting and ending with a letter or digit", labID)
	}
	return nil
}

func validateNodeName(name string) error {
	if !nodeNamePattern.MatchString(name) {
		return fmt.Errorf("node name %q is not valid: use 1 to 63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", name)
	}
	return nil
}

func validateLinkName(name string) error {
	if name == "" || len(name) > maxLinkNameLen || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("interface name %q is not valid: use 1 to %d characters without '/', ':' or spaces", name, maxLinkNameLen)
	}
	return nil
}

// fabricNamespaceName names the namespace holding a lab's bridges.
func fabricNamespaceName(labID string) string { return namespacePrefix + labID }

// nodeNamespaceName names a node's namespace. Node names may contain dots;
// the lab ID cannot, so the name still parses as cclm.<lab>.<node>.
func nodeNamespaceName(labID, node string) string {
	return fabricNamespaceName(labID) + "." + node
}

// labNamespacePrefix starts the namespace name of every node of a lab.
func labNamespacePrefix(labID string) string { return fabricNamespaceName(labID) + "." }

// hashedLinkName derives a short interface name, unique per lab and node,
// for a link whose owner's name may be too long for IFNAMSIZ: role plus
// 8 hex digits of SHA-256 over lab and node (e.g. "mig-1a2b3c4d"). The
// alias set on the link records its owner, so a hash collision is detected
// instead of silently sharing a port.
func hashedLinkName(role, labID, node string) string {
	sum := sha256.Sum256([]byte(labID + "/" + node))
	return role + "-" + hex.EncodeToString(sum[:4])
}

// Roles of the fabric-side veth ends (at most 6 characters so that
// hashedLinkName stays within IFNAMSIZ).
const (
	migrationPortRole = "mig"
	vmPortRole        = "vm"
)

// portAlias is the IFLA_IFALIAS of a veth end plugged in for a node: it
// names the node, so that status shows whose port it is and a hash
// collision between two node names is caught.
func portAlias(node string) string { return "cclm " + node }
