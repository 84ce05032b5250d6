package qemu

import "strings"

// panicMarker starts the line a Linux kernel prints when it gives up; the
// stack trace after it is long, and the line is what a reader needs.
const panicMarker = "Kernel panic - not syncing"

// ConsoleSummary is what a console shows of a guest's trouble: its last
// lines non-empty lines, preceded by the kernel's panic line when that
// scrolled out of them, in at most maxBytes (0: no bound; the panic line
// stays, the oldest of the last lines go first).
func ConsoleSummary(console string, lines, maxBytes int) string {
	var kept []string
	for _, line := range strings.Split(console, "\n") {
		if line = strings.TrimRight(line, "\r "); strings.TrimSpace(line) != "" {
			kept = append(kept, line)
		}
	}
	panicAt := -1
	for i, line := range kept {
		if strings.Contains(line, panicMarker) {
			panicAt = i
		}
	}
	start := max(len(kept)-lines, 0)
	var head []string
	if panicAt >= 0 && panicAt < start {
		head = []string{kept[panicAt], "..."}
	}
	tail := kept[start:]
	summary := strings.Join(append(head, tail...), "\n")
	for maxBytes > 0 && len(summary) > maxBytes && len(tail) > 1 {
		tail = tail[1:]
		summary = strings.Join(append(head, tail...), "\n")
	}
	return summary
}

// ConsoleSummary is ConsoleSummary of what the guest printed on its
// serial console.
func (in *Instance) ConsoleSummary(lines, maxBytes int) string {
	return ConsoleSummary(tailFile(in.paths.ConsoleLog, 500), lines, maxBytes)
}
