package preflight

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/internal/trust"
)

// world is a source (ocp7) and a target (ocp1) as the lab has them, with
// one running VM apps/web, every check passing; cases change it.
type world struct {
	t *testing.T

	sourceKV, targetKV   *kubevirtv1.KubeVirt
	sourceNAD, targetNAD *cniv1.NetworkAttachmentDefinition
	toolkit              *forkliftv1beta1.ForkliftController
	vm                   *kubevirtv1.VirtualMachine
	vmi                  *kubevirtv1.VirtualMachineInstance
	pvc                  *corev1.PersistentVolumeClaim
	sourceNode           *corev1.Node
	targetNodes          []*corev1.Node
	sourceClass          *storagev1.StorageClass
	targetClass          *storagev1.StorageClass
	extraSource          []client.Object
	extraTarget          []client.Object
	// sourceTrust and targetTrust are each side's kubevirt-ca and
	// kubevirt-external-ca (nil: absent).
	sourceTrust, targetTrust [2]*corev1.ConfigMap

	// denied lists permissions ("verb group/resource ns") the token lacks.
	denied map[string]bool
	// unauthorized: the source rejects the token.
	unauthorized bool
	// forbidden: kinds the token may not read on the source.
	forbidden map[string]bool

	sourceVersion, targetVersion *version.Info
	input                        Input
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, denied: map[string]bool{}, forbidden: map[string]bool{}}
	w.sourceKV = kubeVirt(serveSync(t))
	w.targetKV = kubeVirt(serveSync(t))
	w.sourceNAD = nad("192.168.201.128/25")
	w.targetNAD = nad("192.168.201.0/25")
	sourceCA, targetCA := testenv.CAPEM(t, "ocp7"), testenv.CAPEM(t, "ocp1")
	w.sourceTrust = [2]*corev1.ConfigMap{bundleConfigMap(trust.CABundleConfigMap, sourceCA), bundleConfigMap(trust.ExternalCAConfigMap, targetCA)}
	w.targetTrust = [2]*corev1.ConfigMap{bundleConfigMap(trust.CABundleConfigMap, targetCA), bundleConfigMap(trust.ExternalCAConfigMap, sourceCA)}
	w.toolkit = &forkliftv1beta1.ForkliftController{
		ObjectMeta: metav1.ObjectMeta{Name: "forklift-controller", Namespace: "openshift-mtv"},
		Spec:       forkliftv1beta1.ForkliftControllerSpec{FeatureOCPLiveMigration: "true"},
	}
	w.vm = &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", UID: "vm-uid"},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr(kubevirtv1.RunStrategyAlways),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: kubevirtv1.VirtualMachineInstanceSpec{
				Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{
					Interfaces: []kubevirtv1.Interface{{Name: "default", MacAddress: "02:00:00:00:00:01"}},
				}},
				Networks: []kubevirtv1.Network{{Name: "default", Pod: &kubevirtv1.PodNetwork{}}},
				Volumes: []kubevirtv1.Volume{
					{Name: "root", ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "cclm/guest"}},
					{Name: "data", DataVolume: &kubevirtv1.DataVolumeSource{Name: "web-data"}},
				},
			}},
		},
	}
	w.vmi = &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps"},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase: kubevirtv1.Running, NodeName: "ocp7-worker-0",
			Conditions: []kubevirtv1.VirtualMachineInstanceCondition{{
				Type: kubevirtv1.VirtualMachineInstanceIsStorageLiveMigratable, Status: corev1.ConditionTrue,
				Reason: "StorageLiveMigratable", Message: "every volume is mirrored during live migration",
			}},
			Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", MAC: "02:00:00:00:00:01"}},
		},
	}
	w.pvc = &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "web-data", Namespace: "apps"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr("cclm-local"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	w.sourceNode = node("ocp7-worker-0", "8Gi")
	w.targetNodes = []*corev1.Node{node("ocp1-worker-0", "8Gi"), node("ocp1-worker-1", "8Gi")}
	w.sourceClass = localClass()
	w.targetClass = localClass()
	w.sourceVersion = &version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.0"}
	w.targetVersion = &version.Info{Major: "1", Minor: "36", GitVersion: "v1.36.2"}
	w.input = Input{
		VMs:        []forkliftv1beta1.Ref{{Namespace: "apps", Name: "web"}},
		NetworkMap: []forkliftv1beta1.NetworkPair{{Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"}}},
		StorageMap: []forkliftv1beta1.StoragePair{{Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "cclm-local"}}},
		SourceName: "ocp7", TargetName: "ocp1",
		Timeout: 2 * time.Second,
	}
	return w
}

func ptr[T any](v T) *T { return &v }

func kubeVirt(syncAddress string) *kubevirtv1.KubeVirt {
	kv := &kubevirtv1.KubeVirt{
		ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: "openshift-cnv"},
		Spec: kubevirtv1.KubeVirtSpec{Configuration: kubevirtv1.KubeVirtConfiguration{
			DeveloperConfiguration: &kubevirtv1.DeveloperConfiguration{FeatureGates: []string{"DecentralizedLiveMigration"}},
			MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "livemigration-network"},
		}},
	}
	if syncAddress != "" {
		kv.Status.SynchronizationAddresses = []string{syncAddress}
	}
	return kv
}

// nad is the seed's migration NAD excluding one half of the /24.
func nad(exclude string) *cniv1.NetworkAttachmentDefinition {
	return &cniv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "livemigration-network", Namespace: "openshift-cnv"},
		Spec: cniv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(
			`{"cniVersion":"0.3.1","name":"migration-bridge","type":"macvlan","bridge":"br-2001","mode":"bridge","ipam":{"type":"whereabouts","range":"192.168.201.0/24","exclude":[%q]}}`, exclude)},
	}
}

func node(name, storage string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubevirt.io/schedulable":                         "true",
			"cpu-model.node.kubevirt.io/Westmere":             "true",
			"cpu-model.node.kubevirt.io/Opteron_G1":           "true",
			"cpu-model-migration.node.kubevirt.io/Westmere":   "true",
			"cpu-model-migration.node.kubevirt.io/Opteron_G1": "true",
			"host-model-cpu.node.kubevirt.io/Westmere":        "true",
		}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceEphemeralStorage: resource.MustParse(storage),
			corev1.ResourceMemory:           resource.MustParse("4Gi"),
		}},
	}
}

func localClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "cclm-local", UID: "class-uid", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: "cclm.io/local",
	}
}

// serveSync serves TLS as a sync controller does (a client certificate is
// demanded) and returns its address.
func serveSync(t *testing.T) string {
	t.Helper()
	cert := selfSigned(t)
	listener, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake()
				_, _ = conn.Read(make([]byte, 1))
			}()
		}
	}()
	return listener.Addr().String()
}

// frozenSync accepts TCP (the kernel does, from the backlog) but never
// answers: a SIGSTOPped controller.
func frozenSync(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	return listener.Addr().String()
}

// closedPort is an address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()
	return address
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "virt-synchronization-controller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func bundleConfigMap(name, bundle string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "openshift-cnv", Name: name}, Data: map[string]string{trust.BundleKey: bundle}}
}

func (w *world) clients() (source, target *cluster) {
	sourceObjects := append([]client.Object{w.sourceNAD, w.sourceClass}, w.extraSource...)
	for _, o := range []client.Object{w.sourceKV, w.vm, w.vmi, w.pvc, w.sourceNode, w.sourceTrust[0], w.sourceTrust[1]} {
		if !isNil(o) {
			sourceObjects = append(sourceObjects, o)
		}
	}
	targetObjects := append([]client.Object{w.targetNAD}, w.extraTarget...)
	for _, o := range []client.Object{w.targetKV, w.toolkit, w.targetClass, w.targetTrust[0], w.targetTrust[1]} {
		if !isNil(o) {
			targetObjects = append(targetObjects, o)
		}
	}
	for _, n := range w.targetNodes {
		targetObjects = append(targetObjects, n)
	}
	sourceClient := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(sourceObjects...).Build(), w.funcs(true))
	targetClient := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(targetObjects...).Build(), w.funcs(false))
	source = &cluster{side: Source, name: "ocp7", host: "https://ocp7:6443", client: sourceClient, nodeReader: sourceClient,
		version: func(context.Context) (*version.Info, error) {
			if w.unauthorized {
				return nil, apierrors.NewUnauthorized("Unauthorized")
			}
			return w.sourceVersion, nil
		}}
	target = &cluster{side: Target, name: "ocp1", host: "https://ocp1:6443", client: targetClient, nodeReader: targetClient,
		version: func(context.Context) (*version.Info, error) { return w.targetVersion, nil }}
	return source, target
}

func isNil(o client.Object) bool {
	switch v := o.(type) {
	case *kubevirtv1.KubeVirt:
		return v == nil
	case *kubevirtv1.VirtualMachine:
		return v == nil
	case *kubevirtv1.VirtualMachineInstance:
		return v == nil
	case *corev1.PersistentVolumeClaim:
		return v == nil
	case *corev1.Node:
		return v == nil
	case *forkliftv1beta1.ForkliftController:
		return v == nil
	case *storagev1.StorageClass:
		return v == nil
	case *corev1.ConfigMap:
		return v == nil
	}
	return o == nil
}

func kindOf(obj any) string { return strings.TrimPrefix(fmt.Sprintf("%T", obj), "*") }

func (w *world) funcs(source bool) interceptor.Funcs {
	refuse := func(obj any) error {
		if !source {
			return nil
		}
		if w.unauthorized {
			return apierrors.NewUnauthorized("Unauthorized")
		}
		if w.forbidden[kindOf(obj)] {
			return apierrors.NewForbidden(schema.GroupResource{Resource: kindOf(obj)}, "", fmt.Errorf("RBAC: not allowed"))
		}
		return nil
	}
	return interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := refuse(obj); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := refuse(list); err != nil {
				return err
			}
			return c.List(ctx, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			switch review := obj.(type) {
			case *authenticationv1.SelfSubjectReview:
				if err := refuse(obj); err != nil {
					return err
				}
				review.Status.UserInfo.Username = "system:serviceaccount:openshift-mtv:cclm"
				return nil
			case *authorizationv1.SelfSubjectAccessReview:
				if err := refuse(obj); err != nil {
					return err
				}
				a := review.Spec.ResourceAttributes
				review.Status.Allowed = !w.denied[fmt.Sprintf("%s %s/%s %s", a.Verb, a.Group, a.Resource, a.Namespace)]
				return nil
			}
			w.t.Errorf("preflight created %T %s", obj, obj.GetName())
			return fmt.Errorf("preflight must not create")
		},
		Update: func(context.Context, client.WithWatch, client.Object, ...client.UpdateOption) error {
			w.t.Error("preflight updated something")
			return fmt.Errorf("no")
		},
		Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
			w.t.Error("preflight patched something")
			return fmt.Errorf("no")
		},
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			w.t.Error("preflight deleted something")
			return fmt.Errorf("no")
		},
	}
}

func (w *world) run() Report {
	w.t.Helper()
	source, target := w.clients()
	return run(context.Background(), withDefaults(w.input), source, target)
}

// find is the check with id (and side or VM when given).
func find(t *testing.T, r Report, id string, side Side) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID == id && (side == "" || c.Side == side) {
			return c
		}
	}
	t.Fatalf("no check %s (%s) in the report:\n%s", id, side, dump(r))
	return Check{}
}

func dump(r Report) string {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-24s %-7s %-9s %-8s %s", c.ID, c.Side, c.VM, c.Status, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(&b, "\n%52s fix: %s", "", c.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

var allChecks = []struct {
	id   string
	side Side
}{
	{TokenValid, Source}, {TokenPermissions, Source}, {ToolkitEnabled, Target},
	{FeatureGate, Source}, {FeatureGate, Target}, {Versions, ""},
	{SyncAddress, Source}, {SyncAddress, Target}, {SyncReachable, Source}, {SyncReachable, Target},
	{MigrationRangesDisjoint, ""}, {ClusterTrust, ""},
	{VMExists, Source}, {VMFieldsSupported, Source}, {VMRunning, Source}, {VMStorageLiveMigratable, Source},
	{NetworkMapped, ""}, {StorageMapped, ""}, {CPUModel, Target}, {MACConflict, Target}, {VMReferences, Target}, {TargetStorage, Target},
}

func TestEveryCheckPassesOnAGoodSetup(t *testing.T) {
	w := newWorld(t)
	report := w.run()
	if len(report.Checks) != len(allChecks) {
		t.Fatalf("want %d checks, got:\n%s", len(allChecks), dump(report))
	}
	for i, want := range allChecks {
		got := report.Checks[i]
		if got.ID != want.id || got.Side != want.side || got.Status != Passed || got.Message == "" || got.Fix != "" {
			t.Errorf("check %d: want %s/%s Passed with a message and no fix, got %+v", i, want.id, want.side, got)
		}
		if i >= 12 && got.VM != "apps/web" {
			t.Errorf("check %s names VM %q, want apps/web", got.ID, got.VM)
		}
	}
	if !report.OK() {
		t.Fatal("report not OK")
	}
	t.Log("\n" + dump(report))
	for _, want := range []struct{ id, text string }{
		{TokenValid, "system:serviceaccount:openshift-mtv:cclm"},
		{CPUModel, "host model Westmere"},
		{TargetStorage, "1Gi"},
		{SyncReachable, "virt-synchronization-controller"},
		{MigrationRangesDisjoint, "192.168.201.0/25"},
		{ClusterTrust, "ocp7 and ocp1 trust each other's migration CA"},
	} {
		if c := find(t, report, want.id, ""); !strings.Contains(c.Message, want.text) {
			t.Errorf("%s: message %q lacks %q", want.id, c.Message, want.text)
		}
	}
}

// Each case breaks one thing: that check fails with its message and fix;
// the checks that depend on it are skipped, naming it.
func TestEachCheckFailsWithItsFix(t *testing.T) {
	cases := []struct {
		name    string
		change  func(w *world)
		id      string
		side    Side
		message string // in the message
		fix     string // in the fix
		skipped []string
		// alsoFail: other checks that fail for the same cause.
		alsoFail []string
	}{
		{name: "token revoked", change: func(w *world) { w.unauthorized = true },
			id: TokenValid, message: "token invalid or revoked", fix: "cclm connect --source ocp7 --target ocp1",
			skipped: []string{TokenPermissions, Versions, VMExists, VMRunning, CPUModel, TargetStorage, MigrationRangesDisjoint, ClusterTrust}},
		{name: "token may not create VMIMs", change: func(w *world) {
			w.denied["create kubevirt.io/virtualmachineinstancemigrations apps"] = true
			w.denied["get /secrets apps"] = true
		}, id: TokenPermissions, message: "may not do 2 of the", fix: "live-migration-role"},
		{name: "no toolkit", change: func(w *world) { w.toolkit = nil },
			id: ToolkitEnabled, message: "no ForkliftController in namespace openshift-mtv on ocp1", fix: `feature_ocp_live_migration: "true"`},
		{name: "toolkit flag off", change: func(w *world) { w.toolkit.Spec.FeatureOCPLiveMigration = "false" },
			id: ToolkitEnabled, message: `forklift-controller has "false"`, fix: "kubectl --context ocp1 patch forkliftcontroller forklift-controller"},
		{name: "gate off on the target", change: func(w *world) {
			w.targetKV.Spec.Configuration.DeveloperConfiguration.FeatureGates = []string{"Snapshot"}
		},
			id: FeatureGate, side: Target, message: "does not enable feature gate DecentralizedLiveMigration", fix: `"featureGates":["Snapshot","DecentralizedLiveMigration"]`},
		{name: "gate off on the source", change: func(w *world) { w.sourceKV.Spec.Configuration.DeveloperConfiguration = nil },
			id: FeatureGate, side: Source, message: "KubeVirt openshift-cnv/kubevirt on ocp7", fix: "kubectl --context ocp7 patch kubevirt kubevirt"},
		{name: "token may not read KubeVirt", change: func(w *world) { w.forbidden["v1.KubeVirtList"] = true },
			id: FeatureGate, side: Source, message: "the token may not list KubeVirt CRs", fix: "live-migration-role",
			skipped: []string{SyncAddress, SyncReachable, MigrationRangesDisjoint}},
		{name: "no KubeVirt on the target", change: func(w *world) { w.targetKV = nil },
			id: FeatureGate, side: Target, message: "no KubeVirt CR in namespace openshift-cnv", fix: "install KubeVirt",
			skipped: []string{SyncAddress, SyncReachable, MigrationRangesDisjoint}},
		{name: "versions far apart", change: func(w *world) { w.targetVersion = &version.Info{Major: "1", Minor: "33+", GitVersion: "v1.33.1"} },
			id: Versions, message: "ocp1 runs Kubernetes 1.33", fix: "upgrade ocp1"},
		{name: "no migration CA on the target", change: func(w *world) { w.targetTrust[0] = nil },
			id: ClusterTrust, side: Target, message: "ocp1 has no migration CA: no ConfigMap openshift-cnv/kubevirt-ca", fix: "install KubeVirt on ocp1"},
		{name: "a damaged kubevirt-external-ca on the source", change: func(w *world) {
			w.sourceTrust[1].Data[trust.BundleKey] = "-----BEGIN CERTIFICATE-----\nAAAA"
		}, id: ClusterTrust, message: "ocp7's CA bundles (ConfigMaps kubevirt-ca and kubevirt-external-ca in openshift-cnv) are not all PEM certificates", fix: "repair ConfigMap openshift-cnv/kubevirt-external-ca on ocp7"},
		{name: "no sync address on the target", change: func(w *world) { w.targetKV.Status.SynchronizationAddresses = nil },
			id: SyncAddress, side: Target, message: "publishes no status.synchronizationAddresses", fix: "virt-synchronization-controller",
			skipped: []string{SyncReachable}},
		{name: "frozen sync controller", change: func(w *world) {
			w.targetKV.Status.SynchronizationAddresses = []string{frozenSync(w.t)}
			w.input.Timeout = 300 * time.Millisecond
		}, id: SyncReachable, side: Target, message: "TCP connected but no TLS server answer", fix: "ocp1's virt-synchronization-controller runs"},
		{name: "sync port closed", change: func(w *world) { w.sourceKV.Status.SynchronizationAddresses = []string{closedPort(w.t)} },
			id: SyncReachable, side: Source, message: "connection refused", fix: "ocp7's virt-synchronization-controller runs"},
		{name: "overlapping ranges", change: func(w *world) { w.targetNAD = nad("192.168.201.128/25") },
			id: MigrationRangesDisjoint, message: "both can hand out 192.168.201.1-192.168.201.127", fix: `"exclude": ["192.168.201.128/25"] in one NAD and ["192.168.201.0/25"] in the other`},
		{name: "migration NAD missing", change: func(w *world) { w.targetKV.Spec.Configuration.MigrationConfiguration.Network = "nope" },
			id: MigrationRangesDisjoint, message: "no NetworkAttachmentDefinition openshift-cnv/nope", fix: "create NAD"},
		{name: "no such VM", change: func(w *world) { w.input.VMs[0].Name = "ghost" },
			id: VMExists, message: "no VM apps/ghost on ocp7", fix: "kubectl --context ocp7 get vm -A",
			skipped: []string{VMRunning, VMStorageLiveMigratable, NetworkMapped, StorageMapped, CPUModel, MACConflict, TargetStorage}},
		{name: "VM stopped", change: func(w *world) {
			w.vmi = nil
			w.vm.Spec.RunStrategy = ptr(kubevirtv1.RunStrategyHalted)
		}, id: VMRunning, message: "is not running: it has no VMI (runStrategy Halted", fix: `"runStrategy":"Always"`,
			skipped: []string{VMStorageLiveMigratable}},
		{name: "VMI still scheduling", change: func(w *world) { w.vmi.Status.Phase = kubevirtv1.Scheduling },
			id: VMRunning, message: "phase Scheduling", fix: "describe vmi web"},
		{name: "storage not migratable", change: func(w *world) {
			w.vmi.Status.Conditions[0].Status, w.vmi.Status.Conditions[0].Reason = corev1.ConditionFalse, "HostDisk"
		}, id: VMStorageLiveMigratable, message: "StorageLiveMigratable=False: HostDisk", fix: "remove them"},
		{name: "pod network unmapped", change: func(w *world) { w.input.NetworkMap = nil },
			id: NetworkMapped, message: `network "default" (pod network) has no entry`, fix: "{source: {type: pod}, destination: {type: pod}}"},
		{name: "multus network unmapped", change: func(w *world) {
			w.vm.Spec.Template.Spec.Networks = append(w.vm.Spec.Template.Spec.Networks, kubevirtv1.Network{Name: "blue", Multus: &kubevirtv1.MultusNetwork{NetworkName: "vlans/blue"}})
		}, id: NetworkMapped, message: `network "blue" (multus vlans/blue) has no entry`, fix: "{source: {namespace: vlans, name: blue}"},
		{name: "multus destination missing", change: func(w *world) {
			w.vm.Spec.Template.Spec.Networks = append(w.vm.Spec.Template.Spec.Networks, kubevirtv1.Network{Name: "blue", Multus: &kubevirtv1.MultusNetwork{NetworkName: "blue"}})
			w.input.NetworkMap = append(w.input.NetworkMap, forkliftv1beta1.NetworkPair{
				Source: forkliftv1beta1.Ref{Namespace: "apps", Name: "blue"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "multus", Name: "blue"}})
		}, id: NetworkMapped, message: "maps to NAD apps/blue, which does not exist on ocp1", fix: "create those NADs"},
		{name: "storage class unmapped", change: func(w *world) {
			w.input.StorageMap[0].Source.Name = "fast"
		}, id: StorageMapped, message: `storage class "cclm-local" (of PVC web-data) has no entry in the StorageMap`, fix: "{source: {name: cclm-local}, destination: {storageClass: <a class of ocp1: cclm-local>}}",
			skipped: []string{TargetStorage}},
		{name: "destination class missing", change: func(w *world) { w.input.StorageMap[0].Destination.StorageClass = "fast" },
			id: StorageMapped, message: `maps "cclm-local" to "fast", which does not exist on ocp1`, fix: "destination.storageClass of the StorageMap to one of cclm-local"},
		{name: "CPU model not offered", change: func(w *world) {
			w.vm.Spec.Template.Spec.Domain.CPU = &kubevirtv1.CPU{Model: "EPYC-Genoa"}
		}, id: CPUModel, message: "needs CPU model EPYC-Genoa (spec.template.spec.domain.cpu.model), which no node of ocp1 offers", fix: "e.g. Westmere, Opteron_G1, and restart it"},
		{name: "host model not offered", change: func(w *world) {
			w.sourceNode.Labels = map[string]string{"host-model-cpu.node.kubevirt.io/Icelake-Server": "true"}
		}, id: CPUModel, message: "cpu-model-migration.node.kubevirt.io/Icelake-Server=true", fix: "spec.template.spec.domain.cpu.model"},
		{name: "no schedulable target node", change: func(w *world) {
			for _, n := range w.targetNodes {
				n.Spec.Unschedulable = true
			}
		}, id: CPUModel, message: "ocp1 has no schedulable node", fix: "uncordon", alsoFail: []string{TargetStorage}},
		{name: "MAC in use on the target", change: func(w *world) {
			other := w.vm.DeepCopy()
			other.Namespace, other.Name, other.UID, other.ResourceVersion = "other", "twin", "twin-uid", ""
			w.extraTarget = append(w.extraTarget, other)
		}, id: MACConflict, message: "MAC 02:00:00:00:00:01 (interface default) is used on ocp1 by VM other/twin", fix: "macAddress"},
		{name: "disk too big for any node", change: func(w *world) {
			w.pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("20Gi")
		}, id: TargetStorage, message: "needs 20Gi of local storage (web-data 20Gi) on one node of ocp1, and no node has that much left", fix: "--storage"},
		{name: "disk does not fit next to existing volumes", change: func(w *world) {
			for i, n := range w.targetNodes {
				w.extraTarget = append(w.extraTarget, &corev1.PersistentVolume{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pv-%d", i), Annotations: map[string]string{"cclm.io/storage-node": n.Name}},
					Spec:       corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("7800Mi")}},
				})
			}
		}, id: TargetStorage, message: "ocp1-worker-0 392Mi free of 8Gi", fix: "free 632Mi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tc.change(w)
			report := w.run()
			got := find(t, report, tc.id, tc.side)
			if got.Status != Failed || !strings.Contains(got.Message, tc.message) || !strings.Contains(got.Fix, tc.fix) {
				t.Fatalf("want %s failed with %q in the message and %q in the fix, got\n%s", tc.id, tc.message, tc.fix, dump(report))
			}
			for _, id := range tc.skipped {
				found := false
				for _, c := range report.Checks {
					found = found || c.ID == id && c.Status == Skipped && strings.Contains(c.Message, tc.id)
				}
				if !found {
					t.Errorf("%s should be skipped naming %s:\n%s", id, tc.id, dump(report))
				}
			}
			if report.OK() {
				t.Fatal("report OK despite a failure")
			}
			// Nothing else fails for this one cause, except what
			// follows from it.
			for _, c := range report.Failures() {
				if c.ID != tc.id && !slices.Contains(tc.alsoFail, c.ID) {
					t.Errorf("unexpected failure besides %s: %+v", tc.id, c)
				}
			}
			t.Logf("%s: %s\n  fix: %s", got.ID, got.Message, got.Fix)
		})
	}
}

func TestHostModelIsSkippedWhenTheTokenMayNotReadNodes(t *testing.T) {
	w := newWorld(t)
	w.forbidden["v1.Node"] = true
	report := w.run()
	c := find(t, report, CPUModel, "")
	if c.Status != Skipped || !strings.Contains(c.Message, "the token may not read") || !strings.Contains(c.Message, "ocp7-worker-0") {
		t.Fatalf("want CPUModel skipped naming the unreadable node, got %+v", c)
	}
	if !report.OK() {
		t.Fatalf("a skipped check is no failure:\n%s", dump(report))
	}
}

func TestNamedCPUModelOfferedAndVMByID(t *testing.T) {
	w := newWorld(t)
	w.vm.Spec.Template.Spec.Domain.CPU = &kubevirtv1.CPU{Model: "Opteron_G1"}
	w.input.VMs = []forkliftv1beta1.Ref{{ID: "vm-uid"}}
	report := w.run()
	if !report.OK() {
		t.Fatalf("want a passing report:\n%s", dump(report))
	}
	c := find(t, report, CPUModel, "")
	if !strings.Contains(c.Message, "ocp1-worker-0, ocp1-worker-1 offer it (cpu-model.node.kubevirt.io/Opteron_G1=true)") {
		t.Fatalf("CPUModel message: %s", c.Message)
	}
	if c.VM != "vm-uid" {
		t.Fatalf("a VM given by id is named by it: %q", c.VM)
	}
}

func TestPermissionsWithoutVMsAreCheckedInEveryNamespace(t *testing.T) {
	w := newWorld(t)
	w.input.VMs = nil
	w.denied["delete kubevirt.io/virtualmachineinstancemigrations "] = true
	report := w.run()
	c := find(t, report, TokenPermissions, "")
	if c.Status != Failed || !strings.Contains(c.Message, "delete virtualmachineinstancemigrations.kubevirt.io in every namespace") ||
		!strings.Contains(c.Fix, "{apiGroups: [\"kubevirt.io\"], resources: [virtualmachineinstancemigrations], verbs: [delete]}") {
		t.Fatalf("got %+v", c)
	}
	if len(report.Checks) != 12 {
		t.Fatalf("without VMs only the cluster checks run:\n%s", dump(report))
	}
}

func TestStorageMapByIDAndDataVolumeWithoutPVC(t *testing.T) {
	w := newWorld(t)
	w.pvc = nil
	w.vm.Spec.DataVolumeTemplates = []kubevirtv1.DataVolumeTemplateSpec{{
		ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: "web-data"},
		Spec: cdiv1beta1.DataVolumeSpec{Storage: &cdiv1beta1.StorageSpec{
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}},
		}},
	}}
	w.input.StorageMap[0].Source = forkliftv1beta1.Ref{ID: "class-uid"}
	report := w.run()
	if !report.OK() {
		t.Fatalf("want a passing report:\n%s", dump(report))
	}
	if c := find(t, report, StorageMapped, ""); !strings.Contains(c.Message, "cclm-local (web-data) -> cclm-local") {
		t.Fatalf("StorageMapped: %s", c.Message)
	}
	if c := find(t, report, TargetStorage, ""); !strings.Contains(c.Message, "web-data 2Gi") {
		t.Fatalf("TargetStorage: %s", c.Message)
	}
}

func TestRequiredPermissions(t *testing.T) {
	for _, tc := range []struct {
		sameCluster bool
		wantVirt    int
	}{{false, 6}, {true, 4}} {
		perms := requiredPermissions([]forkliftv1beta1.Ref{{Namespace: "b"}, {Namespace: "a"}, {Namespace: "b"}}, "openshift-cnv", tc.sameCluster)
		var a, b, cnv int
		for _, p := range perms {
			switch p.namespace {
			case "a":
				a++
			case "b":
				b++
			case "openshift-cnv":
				cnv++
			}
		}
		if a != b || a != 14 || cnv != tc.wantVirt || len(perms) != 28+tc.wantVirt {
			t.Fatalf("sameCluster %v: per VM namespace 14, virt namespace %d: got a=%d b=%d cnv=%d total=%d", tc.sameCluster, tc.wantVirt, a, b, cnv, len(perms))
		}
	}
}

// One cluster, VMs moving between its namespaces (host Provider on both
// ends): its one migration network and its own MACs are no conflict, but
// a target namespace that is the VM's own is.
func TestOneClusterBetweenNamespaces(t *testing.T) {
	w := newWorld(t)
	w.input.SameCluster = true
	w.targetNAD = nad("192.168.201.128/25") // the source's: one NAD
	w.vmi.UID = "vmi-uid"
	w.extraTarget = []client.Object{w.vm.DeepCopy(), w.vmi.DeepCopy()}
	w.input.TargetNamespace = "apps-moved"
	report := w.run()
	for _, id := range []string{MigrationRangesDisjoint, ClusterTrust, MACConflict, VMExists, TokenPermissions} {
		if c := find(t, report, id, ""); c.Status != Passed {
			t.Errorf("%s %s, want Passed:\n%s", id, c.Status, dump(report))
		}
	}
	if c := find(t, report, MigrationRangesDisjoint, ""); !strings.Contains(c.Message, "one cluster") {
		t.Errorf("MigrationRangesDisjoint: %s", c.Message)
	}

	w.input.TargetNamespace = "apps"
	c := find(t, w.run(), VMExists, "")
	if c.Status != Failed || !strings.Contains(c.Message, "would move onto itself") || !strings.Contains(c.Fix, "spec.targetNamespace") {
		t.Fatalf("VMExists into its own namespace: %s %s (fix %s)", c.Status, c.Message, c.Fix)
	}
}

// Clusters that do not trust each other yet pass: the Migration's
// SynchronizeCertificates step imports the CAs, and the check says which
// side lacks which.
func TestClusterTrustNotYetImportedPasses(t *testing.T) {
	w := newWorld(t)
	w.sourceTrust[1] = nil
	w.targetTrust[1].Data[trust.BundleKey] = testenv.CAPEM(t, "some other cluster")
	report := w.run()
	c := find(t, report, ClusterTrust, "")
	if c.Status != Passed {
		t.Fatalf("ClusterTrust %s, want Passed:\n%s", c.Status, dump(report))
	}
	for _, want := range []string{
		"ocp1 does not trust ocp7's migration CA yet (1 certificate(s) of ocp7's kubevirt-ca missing from its kubevirt-external-ca)",
		"ocp7 does not trust ocp1's migration CA yet",
		"the Migration's SynchronizeCertificates step imports it",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q lacks %q", c.Message, want)
		}
	}
}

// A VM as an upstream KubeVirt's API server may hold it, with fields
// cclm's types lack: each one is named by its path; zero values and
// fields cclm knows are not.
func TestDroppedFieldsNamesWhatCclmDoesNotKnow(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(`{
		"metadata": {"name": "web", "labels": {"app": "web"}, "generation": 3},
		"spec": {
			"runStrategy": "Always",
			"instancetypeX": null,
			"template": {
				"metadata": {"creationTimestamp": null, "labels": {"a": "b"}},
				"spec": {
					"domain": {
						"devices": {
							"rng": {},
							"autoattachGraphicsDevice": false,
							"disks": [{"name": "root", "disk": {"bus": "virtio"}, "cache": "none"}],
							"interfaces": [{"name": "default", "masquerade": {}}]
						},
						"memory": {"guest": "128Mi"},
						"features": {"acpi": {"enabled": true}}
					},
					"evictionStrategy": "LiveMigrate",
					"networks": [{"name": "default", "pod": {}}]
				}
			}
		},
		"status": {"printableStatus": "Running"}
	}`), &raw); err != nil {
		t.Fatal(err)
	}
	dropped, err := droppedFields(raw, &kubevirtv1.VirtualMachine{}, "metadata", "spec")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"spec.template.spec.domain.devices.autoattachGraphicsDevice",
		"spec.template.spec.domain.devices.disks[0].cache",
		"spec.template.spec.domain.devices.rng",
		"spec.template.spec.domain.features",
		"spec.template.spec.evictionStrategy",
	}
	if !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q (false and {} are values: upstream's rng: {} is a device)", dropped, want)
	}
	if _, err := droppedFields(map[string]any{"spec": map[string]any{"runStrategy": 7}}, &kubevirtv1.VirtualMachine{}, "spec"); err == nil {
		t.Error("a field of the wrong type decoded")
	}
}

// An instancetype the VM names: a cluster-wide one must be the same on
// the target; a namespaced one absent there is copied by the Migration.
func TestVMReferences(t *testing.T) {
	spec := func(guest string) instancetypev1beta1.VirtualMachineInstancetypeSpec {
		return instancetypev1beta1.VirtualMachineInstancetypeSpec{CPU: instancetypev1beta1.CPUInstancetype{Guest: 1}, Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse(guest)}}
	}
	cluster := func(guest string) *instancetypev1beta1.VirtualMachineClusterInstancetype {
		return &instancetypev1beta1.VirtualMachineClusterInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "u1.small"}, Spec: spec(guest)}
	}
	for _, tc := range []struct {
		name           string
		source, target []client.Object
		status         Status
		message        string
	}{
		{"same on both", []client.Object{cluster("2Gi")}, []client.Object{cluster("2Gi")}, Passed, "VirtualMachineClusterInstancetype u1.small is the same on both"},
		{"differs", []client.Object{cluster("2Gi")}, []client.Object{cluster("1Gi")}, Failed, "VirtualMachineClusterInstancetype u1.small differs between ocp7 and ocp1"},
		{"missing on the target", []client.Object{cluster("2Gi")}, nil, Failed, "VirtualMachineClusterInstancetype u1.small does not exist on ocp1"},
		{"missing on the source", nil, []client.Object{cluster("2Gi")}, Failed, "references VirtualMachineClusterInstancetype u1.small, which does not exist on ocp7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Name: "u1.small"}
			w.extraSource, w.extraTarget = tc.source, tc.target
			c := find(t, w.run(), VMReferences, "")
			if c.Status != tc.status || !strings.Contains(c.Message, tc.message) {
				t.Errorf("%s %s, want %s with %q", c.Status, c.Message, tc.status, tc.message)
			}
		})
	}
	w := newWorld(t)
	w.vm.Spec.Template.Spec.Volumes = append(w.vm.Spec.Template.Spec.Volumes,
		kubevirtv1.Volume{Name: "creds", Secret: &kubevirtv1.SecretVolumeSource{SecretName: "creds"}},
		kubevirtv1.Volume{Name: "extra", ConfigMap: &kubevirtv1.ConfigMapVolumeSource{Name: "extra", Optional: ptr(true)}})
	w.extraSource = []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "apps"}, Data: map[string][]byte{"k": []byte("a")}}}
	w.extraTarget = []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "apps"}, Data: map[string][]byte{"k": []byte("b")}}}
	if c := find(t, w.run(), VMReferences, ""); c.Status != Passed || !strings.Contains(c.Message, "Secret creds exists in apps on ocp1 with other data and is kept") || !strings.Contains(c.Message, "optional ConfigMap extra is absent") {
		t.Errorf("a Secret the target has with other data: %s %s", c.Status, c.Message)
	}
	w.extraSource = nil
	if c := find(t, w.run(), VMReferences, ""); c.Status != Failed || !strings.Contains(c.Message, "references Secret creds, which does not exist on ocp7") {
		t.Errorf("a Secret missing on the source: %s %s", c.Status, c.Message)
	}

	w = newWorld(t)
	w.vm.Spec.Preference = &kubevirtv1.PreferenceMatcher{Name: "virtio", Kind: kubevirtv1.SingularPreference}
	w.extraSource = []client.Object{&instancetypev1beta1.VirtualMachinePreference{ObjectMeta: metav1.ObjectMeta{Name: "virtio", Namespace: "apps"}}}
	if c := find(t, w.run(), VMReferences, ""); c.Status != Passed || !strings.Contains(c.Message, "VirtualMachinePreference virtio will be copied into apps") {
		t.Errorf("a namespaced preference absent on the target: %s %s", c.Status, c.Message)
	}
}
