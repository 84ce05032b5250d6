package registration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// KubeVirt's node label prefixes for CPU models and features.
const (
	cpuModelLabelPrefix          = scheduling.CPUModelLabelPrefix
	cpuModelMigrationLabelPrefix = "cpu-model-migration.node.kubevirt.io/"
	cpuFeatureLabelPrefix        = scheduling.CPUFeatureLabelPrefix
	hostModelCPULabelPrefix      = "host-model-cpu.node.kubevirt.io/"
)

// HostCPU is what this node's QEMU can offer guests.
type HostCPU struct {
	// Models are the named CPU models QEMU can run here with every feature.
	Models []string
	// Features are the features of the host model.
	Features []string
	// HostModel is the named model closest to what host-model gives.
	HostModel string
}

// hostModelPreference orders named models from newest to oldest: the first
// usable one stands for host-model on this node, as KubeVirt's node labeller
// names the host's model.
var hostModelPreference = []string{
	"Icelake-Server", "Cascadelake-Server", "Skylake-Server", "Skylake-Client",
	"Broadwell", "Haswell-v4", "Haswell", "IvyBridge", "SandyBridge", "Westmere", "Nehalem",
	"EPYC", "Opteron_G5", "Opteron_G4", "qemu64",
}

// ProbeHostCPU asks QEMU (with no machine, over QMP on stdio) which models
// are usable with the accelerator in use and what the host model holds.
func ProbeHostCPU(ctx context.Context, accel qemu.Accel) (HostCPU, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu.DefaultBinary, "-machine", "none", "-accel", string(accel),
		"-nodefaults", "-nographic", "-qmp", "stdio")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return HostCPU{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return HostCPU{}, err
	}
	if err := cmd.Start(); err != nil {
		return HostCPU{}, fmt.Errorf("probe CPU models: %w (install QEMU: apt-get install -y qemu-system-x86)", err)
	}
	defer func() { _ = cmd.Wait() }()
	defer stdin.Close()
	session := &qmpSession{in: stdin, out: bufio.NewScanner(stdout)}
	session.out.Buffer(make([]byte, 1<<20), 16<<20)
	if _, err := session.call(`{"execute":"qmp_capabilities"}`); err != nil {
		return HostCPU{}, err
	}
	definitions, err := session.call(`{"execute":"query-cpu-definitions"}`)
	if err != nil {
		return HostCPU{}, err
	}
	expansion, err := session.call(`{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":{"name":"max"}}}`)
	if err != nil {
		return HostCPU{}, err
	}
	_, _ = session.call(`{"execute":"quit"}`)
	return parseHostCPU(definitions, expansion)
}

// qmpSession is a minimal synchronous QMP exchange: one command, skip the
// greeting and events, return the answer.
type qmpSession struct {
	in  interface{ Write([]byte) (int, error) }
	out *bufio.Scanner
}

func (s *qmpSession) call(command string) (json.RawMessage, error) {
	if _, err := s.in.Write([]byte(command + "\n")); err != nil {
		return nil, err
	}
	for s.out.Scan() {
		var reply struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(s.out.Bytes(), &reply); err != nil {
			continue
		}
		if reply.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s", command, reply.Error.Desc)
		}
		if reply.Return != nil {
			return reply.Return, nil
		}
	}
	return nil, fmt.Errorf("QMP %s: no answer from QEMU (%v)", command, s.out.Err())
}

// parseHostCPU is pure: QMP answers in, labels' facts out.
func parseHostCPU(definitions, expansion json.RawMessage) (HostCPU, error) {
	var models []struct {
		Name                string   `json:"name"`
		UnavailableFeatures []string `json:"unavailable-features"`
		Deprecated          bool     `json:"deprecated"`
	}
	if err := json.Unmarshal(definitions, &models); err != nil {
		return HostCPU{}, fmt.Errorf("query-cpu-definitions: %w", err)
	}
	var expanded struct {
		Model struct {
			Props map[string]any `json:"props"`
		} `json:"model"`
	}
	if err := json.Unmarshal(expansion, &expanded); err != nil {
		return HostCPU{}, fmt.Errorf("query-cpu-model-expansion: %w", err)
	}
	var host HostCPU
	usable := map[string]bool{}
	for _, m := range models {
		// "max", "host" and "base" are not models a VM names to be portable.
		if len(m.UnavailableFeatures) == 0 && !m.Deprecated && m.Name != "max" && m.Name != "host" && m.Name != "base" {
			host.Models = append(host.Models, m.Name)
			usable[m.Name] = true
		}
	}
	for name, value := range expanded.Model.Props {
		if on, ok := value.(bool); ok && on && labelSafe(name) {
			host.Features = append(host.Features, name)
		}
	}
	sort.Strings(host.Models)
	sort.Strings(host.Features)
	for _, candidate := range hostModelPreference {
		if usable[candidate] {
			host.HostModel = candidate
			break
		}
	}
	if len(host.Models) == 0 {
		return HostCPU{}, fmt.Errorf("QEMU offers no usable named CPU model on this host")
	}
	return host, nil
}

// labelSafe keeps feature names that are valid label name parts.
func labelSafe(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0
}

// labels are the Node labels for this CPU in KubeVirt's naming.
func (h HostCPU) labels() map[string]string {
	labels := map[string]string{}
	for _, model := range h.Models {
		if labelSafe(model) {
			labels[cpuModelLabelPrefix+model] = "true"
			labels[cpuModelMigrationLabelPrefix+model] = "true"
		}
	}
	for _, feature := range h.Features {
		labels[cpuFeatureLabelPrefix+feature] = "true"
	}
	if h.HostModel != "" {
		labels[hostModelCPULabelPrefix+h.HostModel] = "true"
	}
	return labels
}
