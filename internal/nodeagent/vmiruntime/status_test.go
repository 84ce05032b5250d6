package vmiruntime

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

func agentCondition(t *testing.T, status kubevirtv1.VirtualMachineInstanceStatus) kubevirtv1.VirtualMachineInstanceCondition {
	t.Helper()
	for _, c := range status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineInstanceAgentConnected {
			return c
		}
	}
	t.Fatal("no AgentConnected condition")
	return kubevirtv1.VirtualMachineInstanceCondition{}
}

func TestRunningStatusSaysWhetherTheGuestBooted(t *testing.T) {
	notBooted := notBootedMessage(90*time.Second, "Booting the kernel.\nKernel panic - not syncing: No working init found.")
	for _, tc := range []struct {
		name       string
		agent      agentReading
		wantStatus corev1.ConditionStatus
		wantReason string
		wantIn     string
	}{
		{"answers", agentReading{info: &guestagent.Info{AgentVersion: "1"}}, corev1.ConditionTrue, "AgentConnected", "answers"},
		{"still booting", agentReading{err: errors.New("timeout")}, corev1.ConditionFalse, "AgentNotConnected", "timeout"},
		{"did not boot", agentReading{err: errors.New("timeout"), notBooted: notBooted}, corev1.ConditionFalse, ReasonGuestNotBooted, "Kernel panic - not syncing"},
		// An agent that answers wins over an overdue deadline read a moment before.
		{"answers late", agentReading{info: &guestagent.Info{AgentVersion: "1"}, notBooted: notBooted}, corev1.ConditionTrue, "AgentConnected", "answers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := runningStatus(testVMI(), "n1", qemu.Domain{}, qemu.Status{Running: true}, tc.agent, time.Now())
			c := agentCondition(t, status)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantIn) {
				t.Fatalf("AgentConnected %s %s %q; want %s %s with %q", c.Status, c.Reason, c.Message, tc.wantStatus, tc.wantReason, tc.wantIn)
			}
		})
	}
}

func TestNotBootedMessage(t *testing.T) {
	got := notBootedMessage(90*time.Second, "")
	if !strings.Contains(got, "within 1m30s") || !strings.Contains(got, "serial console stayed empty") {
		t.Errorf("empty console: %q", got)
	}
	got = notBootedMessage(90*time.Second, "Kernel panic - not syncing: No working init found.")
	if !strings.HasSuffix(got, "serial console:\nKernel panic - not syncing: No working init found.") {
		t.Errorf("console: %q", got)
	}
}
