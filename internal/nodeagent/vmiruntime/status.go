package vmiruntime

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// runningStatus is pure: the VMI's status as its QEMU and guest agent show
// it now. Conditions keep their transition time while their status holds.
func runningStatus(vmi *kubevirtv1.VirtualMachineInstance, node string, dom qemu.Domain, qemuStatus qemu.Status, agent agentReading, now time.Time) kubevirtv1.VirtualMachineInstanceStatus {
	info := agent.info
	status := *vmi.Status.DeepCopy()
	enterPhase(&status, kubevirtv1.Running, metav1.NewTime(now))
	status.NodeName = node
	status.Reason = ""
	status.Interfaces = interfaceStatuses(vmi, dom, info)

	paused := !qemuStatus.Running
	readyStatus, readyReason, readyMessage := corev1.ConditionTrue, "GuestRunning", "QEMU runs the guest"
	if paused {
		readyStatus, readyReason, readyMessage = corev1.ConditionFalse, "Paused", "QEMU is in state "+string(qemuStatus.State)
	}
	setCondition(&status, kubevirtv1.VirtualMachineInstanceReady, readyStatus, readyReason, readyMessage)
	setCondition(&status, kubevirtv1.VirtualMachineInstanceProvisioning, corev1.ConditionFalse, "Provisioned", "volumes and network are in place")
	switch {
	case info != nil:
		setCondition(&status, kubevirtv1.VirtualMachineInstanceAgentConnected, corev1.ConditionTrue, "AgentConnected", "guest agent "+info.AgentVersion+" answers")
	case agent.notBooted != "":
		setCondition(&status, kubevirtv1.VirtualMachineInstanceAgentConnected, corev1.ConditionFalse, ReasonGuestNotBooted, agent.notBooted)
	default:
		message := "guest agent does not answer yet"
		if agent.err != nil {
			message += ": " + agent.err.Error()
		}
		setCondition(&status, kubevirtv1.VirtualMachineInstanceAgentConnected, corev1.ConditionFalse, "AgentNotConnected", message)
	}
	// Every cclm disk is a local file that a migration mirrors to the
	// target, so every VMI can move, storage included.
	setCondition(&status, kubevirtv1.VirtualMachineInstanceIsMigratable, corev1.ConditionTrue, "Migratable", "memory and every disk can be live-migrated")
	setCondition(&status, kubevirtv1.VirtualMachineInstanceIsStorageLiveMigratable, corev1.ConditionTrue, "StorageLiveMigratable", "every volume is mirrored during live migration")
	return status
}

// ReasonGuestNotBooted is the AgentConnected condition's reason, and the
// Warning event's, for a guest whose agent never answered within the node
// agent's boot timeout.
const ReasonGuestNotBooted = "GuestNotBooted"

// agentReading is what the node agent learned from a guest's agent.
type agentReading struct {
	info *guestagent.Info
	err  error
	// notBooted, when set, says the guest did not boot (see bootOverdue).
	notBooted string
}

// enterPhase sets the VMI's phase and records when it was entered, once
// per change (upstream's phaseTransitionTimestamps).
func enterPhase(status *kubevirtv1.VirtualMachineInstanceStatus, phase kubevirtv1.VirtualMachineInstancePhase, now metav1.Time) {
	if status.Phase == phase {
		return
	}
	status.Phase = phase
	status.PhaseTransitionTimestamps = append(status.PhaseTransitionTimestamps, kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{
		Phase: phase, PhaseTransitionTimestamp: now,
	})
}

// interfaceStatuses reports each interface with its MAC, and the guest's
// addresses when the agent told them (matched by MAC).
func interfaceStatuses(vmi *kubevirtv1.VirtualMachineInstance, dom qemu.Domain, info *guestagent.Info) []kubevirtv1.VirtualMachineInstanceNetworkInterface {
	var out []kubevirtv1.VirtualMachineInstanceNetworkInterface
	for _, nic := range dom.NICs {
		entry := kubevirtv1.VirtualMachineInstanceNetworkInterface{Name: nic.Name, MAC: nic.MAC}
		if info != nil {
			for _, guestIface := range info.Interfaces {
				if strings.EqualFold(guestIface.MAC, nic.MAC) {
					entry.InterfaceName = guestIface.Name
					for _, cidr := range guestIface.IPv4 {
						entry.IPs = append(entry.IPs, strings.SplitN(cidr, "/", 2)[0])
					}
				}
			}
		}
		if len(entry.IPs) > 0 {
			entry.IP = entry.IPs[0]
		}
		out = append(out, entry)
	}
	_ = vmi
	return out
}

// setCondition sets a condition and reports whether anything changed; the
// transition time moves only when the status does.
func setCondition(status *kubevirtv1.VirtualMachineInstanceStatus, kind kubevirtv1.VirtualMachineInstanceConditionType, value corev1.ConditionStatus, reason, message string) bool {
	now := metav1.Now()
	for i := range status.Conditions {
		c := &status.Conditions[i]
		if c.Type != kind {
			continue
		}
		if c.Status == value && c.Reason == reason && c.Message == message {
			return false
		}
		if c.Status != value {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = value, reason, message
		return true
	}
	status.Conditions = append(status.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
		Type: kind, Status: value, Reason: reason, Message: message, LastTransitionTime: now,
	})
	return true
}
