package labtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Domain is the QEMU domain name of a VMI: namespace_name.
func Domain(namespace, name string) string { return namespace + "_" + name }

// QEMUs lists the QEMU processes of the host, by pid, whose domain
// matches: the truth about where a VM runs, whichever lab cluster's node
// it runs on (they all run on this host).
func QEMUs(match func(domain string) bool) map[int]string {
	found := map[int]string{}
	for pid, cmdline := range commandLines() {
		if !bytes.Contains(cmdline, []byte("qemu-system")) {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			// -name guest=NAMESPACE_NAME,...
			if rest, ok := strings.CutPrefix(arg, "guest="); ok {
				domain, _, _ := strings.Cut(rest, ",")
				if match(domain) {
					found[pid] = domain
				}
			}
		}
	}
	return found
}

// QEMUPids are the pids of a VMI's QEMU processes, in order.
func QEMUPids(namespace, name string) []int {
	domain := Domain(namespace, name)
	pids := []int{}
	for pid := range QEMUs(func(d string) bool { return d == domain }) {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// ProcessesMentioning lists the live processes, other than this one,
// whose command line contains s, as "pid: command line".
func ProcessesMentioning(s string) []string {
	var found []string
	for pid, cmdline := range commandLines() {
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if pid != os.Getpid() && strings.Contains(line, s) {
			found = append(found, fmt.Sprintf("%d: %s", pid, line))
		}
	}
	slices.Sort(found)
	return found
}

// commandLines are the command lines of the host's processes by pid, as
// /proc has them (arguments NUL-terminated).
func commandLines() map[int][]byte {
	entries, _ := os.ReadDir("/proc")
	lines := map[int][]byte{}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline")); err == nil {
			lines[pid] = cmdline
		}
	}
	return lines
}
