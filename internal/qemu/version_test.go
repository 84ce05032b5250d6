package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		output      string
		want        string
		wantPackage string
		atLeast9    bool
	}{
		{"QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025", "10.0.2", "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1", true},
		{"QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n", "7.2.19", "Debian 1:7.2+dfsg-7+deb12u18+b3", false},
		{"QEMU emulator version 9.0.0\n", "9.0.0", "", true},
		{"QEMU emulator version 8.2\n", "8.2.0", "", false},
	} {
		v, err := ParseVersion(tc.output)
		if err != nil || v.String() != tc.want || v.Package != tc.wantPackage || v.AtLeast(MinimumVersion) != tc.atLeast9 {
			t.Errorf("ParseVersion(%q) = %v %q (at least 9: %t), %v; want %s %q %t", tc.output, v, v.Package, v.AtLeast(MinimumVersion), err, tc.want, tc.wantPackage, tc.atLeast9)
		}
	}
	if _, err := ParseVersion("bash: qemu: not found"); err == nil {
		t.Error("no version in the output: want an error")
	}
}

func TestCheckVersionRefusesAnOldQEMU(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "qemu-old")
	if err := os.WriteFile(binary, []byte("#!/bin/sh\necho 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := CheckVersion(context.Background(), binary)
	if err == nil || !strings.Contains(err.Error(), "QEMU 7.2.19, older than 9.0") || !strings.Contains(err.Error(), "make setup") {
		t.Fatalf("want a refusal naming the version and the fix, got %v", err)
	}
}
