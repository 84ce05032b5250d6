// Package registration keeps a node agent's Node: it creates the Node with
// its capacity, KubeVirt's CPU model and feature labels (probed from QEMU)
// and the annotations of package nodemeta, keeps its Ready condition, and
// renews its Lease in kube-node-lease as the kubelet does.
package registration

import (
	"context"
	"fmt"
	"maps"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/nodemeta"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// leaseDuration and leaseRenewInterval follow the kubelet's defaults: a
// node is considered gone when its lease is not renewed for 40 s.
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
)

// Well-known node labels.
const (
	workerRoleLabel = "node-role.kubernetes.io/worker"
	hostnameLabel   = "kubernetes.io/hostname"
)

// Facts is what the agent publishes about its node.
type Facts struct {
	Name  string
	CPU   HostCPU
	Accel qemu.AccelProbe
	// QEMUVersion is the QEMU the node's guests run in.
	QEMUVersion qemu.Version
	Capacity    corev1.ResourceList
	// Address is where the node agent's API listens (host:port).
	Address string
	APIPort int32
	// APICertSHA256 is the node API certificate's fingerprint.
	APICertSHA256 string
	// MigrationAddress is the node's migration0 address (CIDR), if any.
	MigrationAddress string
	Extra            map[string]string // extra labels, e.g. the lab's cluster name
}

// desiredLabels are the labels the agent owns on its Node.
func (f Facts) desiredLabels() map[string]string {
	labels := map[string]string{
		hostnameLabel:               f.Name,
		workerRoleLabel:             "",
		scheduling.SchedulableLabel: "true",
	}
	maps.Copy(labels, f.CPU.labels())
	maps.Copy(labels, f.Extra)
	return labels
}

// annotations are the Node annotations the agent owns: how to reach its
// API, and its migration address as `oc get nodes` readers look it up.
func (f Facts) annotations() map[string]string {
	annotations := map[string]string{
		nodemeta.APICertAnnotation:     f.APICertSHA256,
		nodemeta.AccelAnnotation:       string(f.Accel.Accel),
		nodemeta.AccelReasonAnnotation: f.Accel.Reason,
		nodemeta.QEMUVersionAnnotation: f.QEMUVersion.String(),
	}
	if f.MigrationAddress != "" {
		annotations[migrationnet.AnnotationKey] = f.MigrationAddress
	}
	return annotations
}

// Register creates the Node or brings its labels and status up to date.
func Register(ctx context.Context, client kubernetes.Interface, facts Facts) error {
	nodes := client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, facts.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: facts.Name}}
		node.Labels = facts.desiredLabels()
		node.Annotations = facts.annotations()
		if node, err = nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("register node %s: %w", facts.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("read node %s: %w", facts.Name, err)
	} else {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		dropStaleCPULabels(node.Labels, facts.desiredLabels())
		maps.Copy(node.Labels, facts.desiredLabels())
		if node.Annotations == nil {
			node.Annotations = map[string]string{}
		}
		maps.Copy(node.Annotations, facts.annotations())
		if node, err = nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s labels: %w", facts.Name, err)
		}
	}
	node.Status = nodeStatus(facts, time.Now())
	if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update node %s status: %w", facts.Name, err)
	}
	return nil
}

// dropStaleCPULabels removes CPU labels the host no longer offers (a QEMU
// upgrade, a different host after a restore).
func dropStaleCPULabels(current, desired map[string]string) {
	for key := range current {
		if isCPULabel(key) {
			if _, keep := desired[key]; !keep {
				delete(current, key)
			}
		}
	}
}

func isCPULabel(key string) bool {
	for _, prefix := range []string{cpuModelLabelPrefix, cpuModelMigrationLabelPrefix, cpuFeatureLabelPrefix, hostModelCPULabelPrefix} {
		if len(key) > len(prefix) && key[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

func nodeStatus(facts Facts, now time.Time) corev1.NodeStatus {
	heartbeat := metav1.NewTime(now)
	host, _, _ := net.SplitHostPort(facts.Address) // the API server's listener address, host:port
	return corev1.NodeStatus{
		Capacity:    facts.Capacity,
		Allocatable: facts.Capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "NodeAgentReady", Message: "cclm node agent is running",
			LastHeartbeatTime: heartbeat, LastTransitionTime: heartbeat,
		}},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}, {Type: corev1.NodeHostName, Address: facts.Name}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: facts.APIPort}},
		NodeInfo:        corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "cclm"},
	}
}

// Capacity makes the Node's capacity from the agent's configured budget.
func Capacity(cpus int, memory, storage resource.Quantity) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(cpus), resource.DecimalSI),
		corev1.ResourceMemory:           memory,
		corev1.ResourceEphemeralStorage: storage,
		corev1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
	}
}

// KeepLease renews the node's Lease in kube-node-lease until ctx ends, and
// refreshes the Ready condition's heartbeat on every fourth renewal.
func KeepLease(ctx context.Context, client kubernetes.Interface, facts Facts, logf func(string, ...any)) {
	round := 0
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := renewLease(ctx, client, facts.Name); err != nil && ctx.Err() == nil {
			logf("renew lease: %v", err)
		}
		if round%4 == 3 {
			if err := Register(ctx, client, facts); err != nil && ctx.Err() == nil {
				logf("node heartbeat: %v", err)
			}
		}
		round++
	}, leaseRenewInterval)
}

func renewLease(ctx context.Context, client kubernetes.Interface, nodeName string) error {
	leases := client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: nodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(nodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}
