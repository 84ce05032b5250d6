package preflight

import (
	"testing"

	"k8s.io/apimachinery/pkg/version"
)

// FuzzEvalVersions feeds the version check what two API servers could
// answer to /version: it must never panic; a version it reads has no
// negative part; it fails exactly when both versions read and differ in
// major or by more than maxMinorSkew minors, and a failure says how to fix.
//
//	go test -fuzz FuzzEvalVersions ./internal/preflight
func FuzzEvalVersions(f *testing.F) {
	f.Add("1", "33", "v1.33.1", "1", "32+", "v1.32.4-gke.1")
	f.Add("", "", "v1.30.0", "", "", "garbage")
	f.Add("1", "-1", "", "1", "1", "")
	f.Add("2", "0", "", "1", "99", "")
	f.Add("x", "y", "v-1.2", "+", "+", "1.2.3.4")
	f.Fuzz(func(t *testing.T, sMajor, sMinor, sGit, tMajor, tMinor, tGit string) {
		src := &version.Info{Major: sMajor, Minor: sMinor, GitVersion: sGit}
		tgt := &version.Info{Major: tMajor, Minor: tMinor, GitVersion: tGit}
		r := &runner{source: &cluster{name: "ocp7"}, target: &cluster{name: "ocp1"}}
		check := evalVersions(r, src, tgt)
		sMa, sMi, sOK := majorMinor(src)
		tMa, tMi, tOK := majorMinor(tgt)
		for _, v := range []int{sMa, sMi, tMa, tMi} {
			if v < 0 {
				t.Fatalf("read a negative version part: %d.%d (%v), %d.%d (%v)", sMa, sMi, sOK, tMa, tMi, tOK)
			}
		}
		skew := sMi - tMi
		if skew < 0 {
			skew = -skew
		}
		wantFail := sOK && tOK && (sMa != tMa || skew > maxMinorSkew)
		if (check.Status == Failed) != wantFail {
			t.Fatalf("%d.%d vs %d.%d: status %s (%s)", sMa, sMi, tMa, tMi, check.Status, check.Message)
		}
		if check.Status == Failed && check.Fix == "" {
			t.Fatalf("a failure without a fix: %s", check.Message)
		}
	})
}
