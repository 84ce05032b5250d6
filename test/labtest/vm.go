package labtest

import (
	"fmt"
	"strconv"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// VM is what a test VM varies; Manifest fills in the rest.
type VM struct {
	Name, Namespace string
	RunStrategy     string // "" for Always
	Memory          string // e.g. 128Mi; "" for 128Mi
	DataDisk        string // size of a blank DataVolume, "" for none
	Image           string // containerDisk image; "" for the lab's guest
	MAC             string // the NIC's MAC, "" to let the controller choose
	// RestoreRunStrategy is a receiver VM's annotation
	// kubevirt.io/restore-run-strategy.
	RestoreRunStrategy string
	KernelArgs         string // spec.domain.firmware.kernelBoot.kernelArgs
	Labels             string // the template's labels (the VMI's), e.g. "{workload: busy}"
}

// Manifest is the VM's YAML.
func (s VM) Manifest() string {
	if s.RunStrategy == "" {
		s.RunStrategy = "Always"
	}
	if s.Memory == "" {
		s.Memory = "128Mi"
	}
	if s.Image == "" {
		s.Image = "cclm/guest"
	}
	var dvTemplates, dataDisk, dataVolume, annotations, mac, firmware, templateMeta string
	if s.Labels != "" {
		templateMeta = "\n    metadata: {labels: " + s.Labels + "}"
	}
	if s.RestoreRunStrategy != "" {
		annotations = fmt.Sprintf(", annotations: {%s: %s}", kubevirtv1.RestoreRunStrategyAnnotation, s.RestoreRunStrategy)
	}
	if s.MAC != "" {
		mac = ", macAddress: " + strconv.Quote(s.MAC)
	}
	if s.KernelArgs != "" {
		firmware = "\n        firmware: {kernelBoot: {kernelArgs: " + strconv.Quote(s.KernelArgs) + "}}"
	}
	if s.DataDisk != "" {
		dvTemplates = fmt.Sprintf(`
  dataVolumeTemplates:
  - metadata: {name: %s-data}
    spec:
      source: {blank: {}}
      storage: {resources: {requests: {storage: %s}}}`, s.Name, s.DataDisk)
		dataDisk = "\n          - {name: datadisk, disk: {bus: virtio}}"
		dataVolume = fmt.Sprintf("\n      - {name: datadisk, dataVolume: {name: %s-data}}", s.Name)
	}
	return fmt.Sprintf(`apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %s, namespace: %s%s}
spec:
  runStrategy: %s%s
  template:%s
    spec:
      domain:
        memory: {guest: %s}%s
        devices:
          disks:
          - {name: rootdisk, disk: {bus: virtio}}%s
          interfaces:
          - {name: default, bridge: {}%s}
      networks:
      - {name: default, pod: {}}
      volumes:
      - {name: rootdisk, containerDisk: {image: %s}}%s
`, s.Name, s.Namespace, annotations, s.RunStrategy, dvTemplates, templateMeta, s.Memory, firmware, dataDisk, mac, s.Image, dataVolume)
}
