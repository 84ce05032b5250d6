package lab

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestOptionsValidateNamesTheFlag(t *testing.T) {
	valid := Options{Dir: "d", Nodes: 2, VirtNamespace: "openshift-cnv"}
	cases := []struct {
		change func(*Options)
		flag   string
	}{
		{func(o *Options) { o.Dir = "" }, "--dir"},
		{func(o *Options) { o.Nodes = 0 }, "--nodes"},
		{func(o *Options) { o.Nodes = 9 }, "--nodes"},
		{func(o *Options) { o.VirtNamespace = "" }, "--virt-namespace"},
		{func(o *Options) { o.Clusters = []string{"ocp7"} }, "--clusters"},
		{func(o *Options) { o.Clusters = []string{"a", "b", "c", "d", "e"} }, "--clusters"},
		{func(o *Options) { o.Clusters = []string{"ocp7", "ocp7"} }, "named twice"},
		{func(o *Options) { o.Clusters = []string{"ocp7", "OCP1"} }, `"OCP1" is not a cluster name`},
		{func(o *Options) { o.Clusters = []string{"ocp7", "ocp1", ""} }, `"" is not a cluster name`},
	}
	threeClusters := valid
	threeClusters.Clusters = []string{"ocp7", "ocp1", "ocp5"}
	if err := threeClusters.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		opts := valid
		tc.change(&opts)
		err := opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: error %v should name %s", opts, err, tc.flag)
		}
	}
}

func TestLineFollowerHoldsBackAPartialLine(t *testing.T) {
	source := &growingReader{}
	follower := &lineFollower{reader: bufio.NewReader(source)}
	var out strings.Builder
	source.data = "one\ntw"
	follower.copyTo(&out)
	if out.String() != "one\n" {
		t.Fatalf("after a partial line: %q", out.String())
	}
	source.data = "o\nthree\n"
	follower.copyTo(&out)
	if out.String() != "one\ntwo\nthree\n" {
		t.Fatalf("after the rest: %q", out.String())
	}
}

// growingReader hands out data as a growing file does: what is there, then EOF.
type growingReader struct{ data string }

func (g *growingReader) Read(p []byte) (int, error) {
	if g.data == "" {
		return 0, io.EOF
	}
	n := copy(p, g.data)
	g.data = g.data[n:]
	return n, nil
}

// The guide's two clusters run the toolkit on the target alone; three or
// more run it everywhere, so that any cluster may receive.
func TestToolkitClusters(t *testing.T) {
	if got := toolkitClusters(DefaultClusters); len(got) != 1 || got[0] != "ocp1" {
		t.Errorf("two clusters: toolkit on %v, want [ocp1]", got)
	}
	three := []string{"ocp7", "ocp1", "ocp5"}
	if got := toolkitClusters(three); len(got) != 3 {
		t.Errorf("three clusters: toolkit on %v, want all three", got)
	}
}
