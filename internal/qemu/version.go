package qemu

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is a QEMU release, as `qemu-system-x86_64 --version` prints it.
type Version struct {
	Major, Minor, Micro int
	// Package is the distribution's package version, e.g. "Debian
	// 1:10.0.2+ds-2+deb13u1~bpo12+1", when QEMU prints one.
	Package string
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// AtLeast says whether v is min or newer.
func (v Version) AtLeast(min Version) bool {
	if v.Major != min.Major {
		return v.Major > min.Major
	}
	if v.Minor != min.Minor {
		return v.Minor > min.Minor
	}
	return v.Micro >= min.Micro
}

// MinimumVersion is the oldest QEMU cclm runs. Before 9.0 QEMU loses a TCG
// guest's writes during a migration of several passes ("physmem: Fix
// migration dirty bitmap coherency with TCG memory access"): the guest
// arrives with stale memory.
var MinimumVersion = Version{Major: 9}

// versionLine matches "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)".
var versionLine = regexp.MustCompile(`QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?(?: \(([^)]*)\))?`)

// ParseVersion reads the output of `qemu-system-x86_64 --version`.
func ParseVersion(output string) (Version, error) {
	m := versionLine.FindStringSubmatch(output)
	if m == nil {
		return Version{}, fmt.Errorf("no \"QEMU emulator version\" in %q", firstLine(output))
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Micro, _ = strconv.Atoi(m[3]) // "" when QEMU prints only X.Y
	v.Package = m[4]
	return v, nil
}

var versions = struct {
	sync.Mutex
	byBinary map[string]Version
}{byBinary: map[string]Version{}}

// BinaryVersion asks a QEMU binary for its version, once per binary and
// process.
func BinaryVersion(ctx context.Context, binary string) (Version, error) {
	binary = orDefault(binary, DefaultBinary)
	versions.Lock()
	defer versions.Unlock()
	if v, ok := versions.byBinary[binary]; ok {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	output, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w (install QEMU: make setup)", binary, err)
	}
	v, err := ParseVersion(string(output))
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w", binary, err)
	}
	versions.byBinary[binary] = v
	return v, nil
}

// CheckVersion refuses a QEMU older than MinimumVersion, naming the fix.
func CheckVersion(ctx context.Context, binary string) (Version, error) {
	v, err := BinaryVersion(ctx, binary)
	if err != nil {
		return v, err
	}
	if !v.AtLeast(MinimumVersion) {
		return v, fmt.Errorf("%s is QEMU %s, older than %d.%d, the oldest cclm runs (older QEMUs lose a TCG guest's writes during migration); "+
			"install a current one: `make setup` does (on Debian 12, qemu-system-x86 from bookworm-backports)",
			orDefault(binary, DefaultBinary), v, MinimumVersion.Major, MinimumVersion.Minor)
	}
	return v, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
