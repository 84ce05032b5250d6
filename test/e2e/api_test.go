package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/test/labtest"
)

const virtNamespace = labtest.VirtNamespace

var kubeVirtInstalled sync.Map // cluster name -> struct{}

// kubeVirtCluster is a shared cluster with KubeVirt installed in
// openshift-cnv and the DecentralizedLiveMigration gate on, and its admin
// client configuration.
func kubeVirtCluster(t *testing.T, name string) (*controlplane.Cluster, *rest.Config) {
	t.Helper()
	c := clusters.Get(t, name)
	admin, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, done := kubeVirtInstalled.Load(name); !done {
		err = install.KubeVirt(context.Background(), admin, install.KubeVirtOptions{
			Namespace: virtNamespace, FeatureGates: []string{"DecentralizedLiveMigration"},
		})
		if err != nil {
			t.Fatal(err)
		}
		kubeVirtInstalled.Store(name, struct{}{})
	}
	return c, admin
}

// apiCluster is the shared foundation cluster, with KubeVirt.
func apiCluster(t *testing.T) *controlplane.Cluster {
	c, _ := kubeVirtCluster(t, "foundation")
	return c
}

// Upstream-shaped manifests of every kind are accepted as they are, with
// kubectl's default strict field validation.
func TestUpstreamManifestsAreAccepted(t *testing.T) {
	c := apiCluster(t)
	mustKubectl(t, c, "", "create", "namespace", "api-samples")
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "test/e2e/testdata/api/valid/*.yaml"))
	if len(files) == 0 {
		t.Fatal("no manifests in testdata/api/valid")
	}
	kinds := map[string]bool{}
	for _, file := range files {
		for _, kind := range manifestKinds(t, file) {
			kinds[kind] = true
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			out := mustKubectl(t, c, "", "apply", "-n", "api-samples", "-f", file)
			t.Log(strings.TrimSpace(out))
		})
	}
	for _, kind := range []string{
		"KubeVirt", "VirtualMachine", "VirtualMachineInstance", "VirtualMachineInstanceMigration",
		"ForkliftController", "Provider", "Plan", "Migration", "NetworkMap", "StorageMap",
		"NetworkAttachmentDefinition", "IPPool", "DataVolume", "MigrationPolicy",
	} {
		if !kinds[kind] {
			t.Errorf("testdata/api/valid has no %s manifest", kind)
		}
	}
}

func manifestKinds(t *testing.T, file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, doc := range strings.Split(string(data), "\n---") {
		var obj struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if obj.Kind != "" {
			kinds = append(kinds, obj.Kind)
		}
	}
	return kinds
}

// invalidCase is one file of testdata/api/invalid.
type invalidCase struct {
	file          string
	manifest      string
	expectedError string
	needsGateOff  bool
}

func readInvalidCases(t *testing.T) []invalidCase {
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "test/e2e/testdata/api/invalid/*.yaml"))
	if len(files) == 0 {
		t.Fatal("no manifests in testdata/api/invalid")
	}
	var cases []invalidCase
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tc := invalidCase{file: filepath.Base(file), manifest: string(data)}
		for _, line := range strings.Split(tc.manifest, "\n") {
			if value, ok := strings.CutPrefix(line, "# expect-error:"); ok {
				tc.expectedError = strings.TrimSpace(value)
			}
			if strings.TrimSpace(line) == "# needs-gate: off" {
				tc.needsGateOff = true
			}
		}
		if tc.expectedError == "" {
			t.Fatalf("%s has no `# expect-error:` line", file)
		}
		cases = append(cases, tc)
	}
	return cases
}

// Each invalid manifest is refused with its message, and nothing of it is
// left in the cluster.
func TestInvalidManifestsAreRefusedWithTheirReason(t *testing.T) {
	c := apiCluster(t)
	mustKubectl(t, c, "", "create", "namespace", "api-invalid")
	cases := readInvalidCases(t)
	for _, gateOff := range []bool{false, true} {
		if gateOff {
			setDecentralizedGate(t, c, false)
			t.Cleanup(func() { setDecentralizedGate(t, c, true) })
		}
		for _, tc := range cases {
			if tc.needsGateOff != gateOff {
				continue
			}
			t.Run(tc.file, func(t *testing.T) {
				expectRefused(t, c, tc)
			})
		}
	}
}

func expectRefused(t *testing.T, c *controlplane.Cluster, tc invalidCase) {
	// The admission policies read the KubeVirt CR through an informer: a
	// gate change reaches them within moments, so allow a short retry.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, stderr, err := kubectl(t, c, tc.manifest, "create", "-n", "api-invalid", "-f", "-")
		if err != nil {
			if !strings.Contains(stderr, tc.expectedError) {
				t.Fatalf("refused, but the message lacks %q:\n%s", tc.expectedError, stderr)
			}
			t.Logf("refused: %s", strings.TrimSpace(stderr))
			break
		}
		// Accepted: remove it again, then fail or retry.
		mustKubectl(t, c, tc.manifest, "delete", "-n", "api-invalid", "-f", "-")
		if !tc.needsGateOff || time.Now().After(deadline) {
			t.Fatalf("accepted, but should be refused with %q", tc.expectedError)
		}
		time.Sleep(500 * time.Millisecond)
	}
	left := mustKubectl(t, c, "", "get", "virtualmachines,virtualmachineinstances,virtualmachineinstancemigrations,datavolumes", "-n", "api-invalid", "-o", "name")
	if strings.TrimSpace(left) != "" {
		t.Fatalf("a refused create left objects behind: %s", left)
	}
}

func setDecentralizedGate(t *testing.T, c *controlplane.Cluster, on bool) {
	config, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubevirts := dynamic.NewForConfigOrDie(config).Resource(schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "kubevirts"}).Namespace(virtNamespace)
	kv, err := kubevirts.Get(context.Background(), install.KubeVirtName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gates := []any{}
	if on {
		gates = append(gates, "DecentralizedLiveMigration")
	}
	if err := unstructured.SetNestedSlice(kv.Object, gates, "spec", "configuration", "developerConfiguration", "featureGates"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubevirts.Update(context.Background(), kv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
