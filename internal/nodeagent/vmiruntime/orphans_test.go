package vmiruntime

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestOrphanRunDirs(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-2*orphanGrace), now.Add(-orphanGrace/2)
	vmis := []types.UID{"85435b2f-c6a9-4e0b-a9d1-0f4d1c2b3a41", "short"}
	for _, tc := range []struct {
		name string
		dirs []runDirEntry
		want []string
	}{
		{"a VMI's directory stays", []runDirEntry{{"85435b2f-c6a9", old}, {"short", old}}, nil},
		{"a directory no VMI names goes", []runDirEntry{{"85435b2f-c6a9", old}, {"deadbeef-0000", old}}, []string{"deadbeef-0000"}},
		{"a new one is spared: its VMI may be newer than the cache", []runDirEntry{{"deadbeef-0000", fresh}}, nil},
		{"the full UID is not a directory name", []runDirEntry{{"85435b2f-c6a9-4e0b-a9d1-0f4d1c2b3a41", old}}, []string{"85435b2f-c6a9-4e0b-a9d1-0f4d1c2b3a41"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := orphanRunDirs(tc.dirs, vmis, now); !slices.Equal(got, tc.want) {
				t.Errorf("orphanRunDirs = %v, want %v", got, tc.want)
			}
		})
	}
}
