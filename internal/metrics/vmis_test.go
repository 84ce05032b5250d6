package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestVMICollector(t *testing.T) {
	collector := VMICollector{Node: "w0", VMIs: func() []VMIFigures {
		return []VMIFigures{{Namespace: "ns", Name: "web", VCPUSeconds: []float64{1.5, 0.25}, ResidentBytes: 90 << 20, DomainBytes: 128 << 20}}
	}}
	want := `
# HELP kubevirt_vmi_memory_domain_bytes The amount of memory in bytes allocated to the domain.
# TYPE kubevirt_vmi_memory_domain_bytes gauge
kubevirt_vmi_memory_domain_bytes{name="web",namespace="ns",node="w0"} 1.34217728e+08
# HELP kubevirt_vmi_memory_resident_bytes Resident set size of the process running the domain.
# TYPE kubevirt_vmi_memory_resident_bytes gauge
kubevirt_vmi_memory_resident_bytes{name="web",namespace="ns",node="w0"} 9.437184e+07
# HELP kubevirt_vmi_vcpu_seconds_total Total amount of time spent in each state by each vcpu (cpu_time excluding hypervisor time).
# TYPE kubevirt_vmi_vcpu_seconds_total counter
kubevirt_vmi_vcpu_seconds_total{id="0",name="web",namespace="ns",node="w0",state="running"} 1.5
kubevirt_vmi_vcpu_seconds_total{id="1",name="web",namespace="ns",node="w0",state="running"} 0.25
`
	if err := testutil.CollectAndCompare(collector, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
