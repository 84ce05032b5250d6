package nodeagent

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Each bad option is refused with the flag to fix in the message.
func TestValidateNamesTheFlag(t *testing.T) {
	valid := Options{
		NodeName: "n1", LabID: "lab", StorageDir: "/var/lib/cclm", RunDir: "/run/cclm/n1", GuestDir: "/g",
		CPUs: 2, Memory: resource.MustParse("1Gi"), Storage: resource.MustParse("1Gi"), Accel: "tcg",
	}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for flag, breakIt := range map[string]func(*Options){
		"--node-name":    func(o *Options) { o.NodeName = "" },
		"--lab-id":       func(o *Options) { o.LabID = "" },
		"--storage-dir":  func(o *Options) { o.StorageDir = "relative" },
		"--run-dir":      func(o *Options) { o.RunDir = "/" + strings.Repeat("r", 70) },
		"--guest-dir":    func(o *Options) { o.GuestDir = "" },
		"--cpus":         func(o *Options) { o.CPUs = 0 },
		"--boot-timeout": func(o *Options) { o.BootTimeout = -1 },
		"--accel":        func(o *Options) { o.Accel = "hvf" },
	} {
		opts := valid
		breakIt(&opts)
		if err := opts.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: got %v, want an error naming %s", flag, err, flag)
		}
	}
}
