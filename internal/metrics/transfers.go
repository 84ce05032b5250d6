package metrics

import "github.com/prometheus/client_golang/prometheus"

// Upstream KubeVirt's migration metrics of virt-handler (its migration
// domain stats), by its names; labelled by the VMI and the node.
var transferLabels = []string{"node", "namespace", "name"}

var (
	transferProcessed    = prometheus.NewDesc("kubevirt_vmi_migration_data_processed_bytes", "The total Guest OS data processed and migrated to the new VM.", transferLabels, nil)
	transferRemaining    = prometheus.NewDesc("kubevirt_vmi_migration_data_remaining_bytes", "The remaining guest OS data to be migrated to the new VM.", transferLabels, nil)
	transferTotal        = prometheus.NewDesc("kubevirt_vmi_migration_data_total_bytes", "The total Guest OS data to be migrated to the new VM.", transferLabels, nil)
	transferDirtyRate    = prometheus.NewDesc("kubevirt_vmi_migration_dirty_memory_rate_bytes", "The rate of memory being dirty in the Guest OS.", transferLabels, nil)
	transferMemoryRate   = prometheus.NewDesc("kubevirt_vmi_migration_memory_transfer_rate_bytes", "The rate at which the memory is being transferred.", transferLabels, nil)
	transferDescriptions = []*prometheus.Desc{transferProcessed, transferRemaining, transferTotal, transferDirtyRate, transferMemoryRate}
)

// Transfer is one outgoing migration's latest figures, as the sending
// QEMU reported them.
type Transfer struct {
	// Namespace and Name are the VMI's.
	Namespace, Name                            string
	TotalBytes, ProcessedBytes, RemainingBytes int64
	// DirtyRate and TransferRate are in bytes per second.
	DirtyRate, TransferRate float64
}

// TransferCollector reports the outgoing migrations of a node, as
// upstream's virt-handler does; Transfers lists them at each scrape.
type TransferCollector struct {
	Node      string
	Transfers func() []Transfer
}

// Describe sends the descriptors of the collector's metrics.
func (c TransferCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range transferDescriptions {
		ch <- d
	}
}

// Collect sends each outgoing migration's figures.
func (c TransferCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.Transfers() {
		labels := []string{c.Node, t.Namespace, t.Name}
		for d, v := range map[*prometheus.Desc]float64{
			transferProcessed: float64(t.ProcessedBytes), transferRemaining: float64(t.RemainingBytes), transferTotal: float64(t.TotalBytes),
			transferDirtyRate: t.DirtyRate, transferMemoryRate: t.TransferRate,
		} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
	}
}
