package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Upstream KubeVirt's per-VMI metrics of virt-handler that QEMU's process
// answers without the guest's help, by its names; labelled by the node and
// the VMI.
var (
	vcpuSeconds = prometheus.NewDesc("kubevirt_vmi_vcpu_seconds_total", "Total amount of time spent in each state by each vcpu (cpu_time excluding hypervisor time).",
		append(append([]string{}, transferLabels...), "id", "state"), nil)
	memoryResident = prometheus.NewDesc("kubevirt_vmi_memory_resident_bytes", "Resident set size of the process running the domain.", transferLabels, nil)
	memoryDomain   = prometheus.NewDesc("kubevirt_vmi_memory_domain_bytes", "The amount of memory in bytes allocated to the domain.", transferLabels, nil)
)

// VMIFigures are a running VMI's figures, as its QEMU process shows them.
type VMIFigures struct {
	Namespace, Name string
	// VCPUSeconds is each vCPU thread's CPU time, by vCPU index.
	VCPUSeconds []float64
	// ResidentBytes is the QEMU process's resident set; DomainBytes the
	// guest's memory.
	ResidentBytes, DomainBytes int64
}

// VMICollector reports a node's running VMIs; VMIs lists them at each
// scrape.
type VMICollector struct {
	Node string
	VMIs func() []VMIFigures
}

// Describe sends the descriptors of the collector's metrics.
func (c VMICollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vcpuSeconds, memoryResident, memoryDomain} {
		ch <- d
	}
}

// Collect sends each running VMI's figures.
func (c VMICollector) Collect(ch chan<- prometheus.Metric) {
	for _, vmi := range c.VMIs() {
		labels := []string{c.Node, vmi.Namespace, vmi.Name}
		for id, seconds := range vmi.VCPUSeconds {
			ch <- prometheus.MustNewConstMetric(vcpuSeconds, prometheus.CounterValue, seconds, append(labels, strconv.Itoa(id), "running")...)
		}
		ch <- prometheus.MustNewConstMetric(memoryResident, prometheus.GaugeValue, float64(vmi.ResidentBytes), labels...)
		ch <- prometheus.MustNewConstMetric(memoryDomain, prometheus.GaugeValue, float64(vmi.DomainBytes), labels...)
	}
}
