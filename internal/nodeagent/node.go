package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/qemu"
)

// leaseDuration and leaseRenewInterval follow the kubelet's defaults: a
// node is considered gone when its lease is not renewed for 40 s.
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
)

// Well-known node labels.
const (
	schedulableLabel = "kubevirt.io/schedulable"
	workerRoleLabel  = "node-role.kubernetes.io/worker"
	hostnameLabel    = "kubernetes.io/hostname"
)

// The Node annotations that say which QEMU the node's guests run in, and
// under which accelerator and why (`cclm lab status` shows them).
const (
	AccelAnnotation       = "cclm.io/accelerator"
	AccelReasonAnnotation = "cclm.io/accelerator-reason"
	QEMUVersionAnnotation = "cclm.io/qemu-version"
)

// nodeFacts is what the agent publishes about its node.
type nodeFacts struct {
	Name  string
	CPU   hostCPU
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
func (f nodeFacts) desiredLabels() map[string]string {
	labels := map[string]string{
		hostnameLabel:    f.Name,
		workerRoleLabel:  "",
		schedulableLabel: "true",
	}
	maps.Copy(labels, f.CPU.labels())
	maps.Copy(labels, f.Extra)
	return labels
}

// annotations are the Node annotations the agent owns: how to reach its
// API, and its migration address as `oc get nodes` readers look it up.
func (f nodeFacts) annotations() map[string]string {
	annotations := map[string]string{
		APICertAnnotation:     f.APICertSHA256,
		AccelAnnotation:       string(f.Accel.Accel),
		AccelReasonAnnotation: f.Accel.Reason,
		QEMUVersionAnnotation: f.QEMUVersion.String(),
	}
	if f.MigrationAddress != "" {
		annotations[migrationnet.AnnotationKey] = f.MigrationAddress
	}
	return annotations
}

// registerNode creates the Node or brings its labels and status up to date.
func registerNode(ctx context.Context, client kubernetes.Interface, facts nodeFacts) error {
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

func nodeStatus(facts nodeFacts, now time.Time) corev1.NodeStatus {
	heartbeat := metav1.NewTime(now)
	return corev1.NodeStatus{
		Capacity:    facts.Capacity,
		Allocatable: facts.Capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			Reason: "NodeAgentReady", Message: "cclm node agent is running",
			LastHeartbeatTime: heartbeat, LastTransitionTime: heartbeat,
		}},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: hostOf(facts.Address)}, {Type: corev1.NodeHostName, Address: facts.Name}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: facts.APIPort}},
		NodeInfo:        corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "cclm"},
	}
}

func hostOf(address string) string {
	for i := len(address) - 1; i >= 0; i-- {
		if address[i] == ':' {
			return address[:i]
		}
	}
	return address
}

// capacity makes the Node's capacity from the agent's configured budget.
func capacity(cpus int, memory, storage resource.Quantity) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(cpus), resource.DecimalSI),
		corev1.ResourceMemory:           memory,
		corev1.ResourceEphemeralStorage: storage,
		corev1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
	}
}

// keepLease renews the node's Lease in kube-node-lease until ctx ends, and
// refreshes the Ready condition's heartbeat on every fourth renewal.
func keepLease(ctx context.Context, client kubernetes.Interface, facts nodeFacts, logf func(string, ...any)) {
	ticker := time.NewTicker(leaseRenewInterval)
	defer ticker.Stop()
	for round := 0; ; round++ {
		if err := renewLease(ctx, client, facts.Name); err != nil && ctx.Err() == nil {
			logf("renew lease: %v", err)
		}
		if round%4 == 3 {
			if err := registerNode(ctx, client, facts); err != nil && ctx.Err() == nil {
				logf("node heartbeat: %v", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
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
