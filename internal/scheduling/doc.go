// Package scheduling places VMIs on nodes as kube-scheduler places pods:
// it filters the nodes (ready and schedulable, node selector, CPU model and
// features, where the VMI's volumes are, memory, local storage) and takes
// the least loaded. It is pure, and a leaf: the virt controller schedules
// new VMIs with it, the migration controller chooses migration targets,
// and the preflight checks read the same labels and figures.
package scheduling

// Labels and annotations the scheduler reads; node agents write the node
// labels, the scheduler the PVC annotation.
const (
	// SchedulableLabel on a Node says the node agent runs VMIs there.
	SchedulableLabel = "kubevirt.io/schedulable"
	// CPUModelLabelPrefix + model = "true" on a Node: the node can run
	// guests with that CPU model.
	CPUModelLabelPrefix = "cpu-model.node.kubevirt.io/"
	// CPUFeatureLabelPrefix + feature = "true" on a Node: the node's CPU
	// has that feature.
	CPUFeatureLabelPrefix = "cpu-feature.node.kubevirt.io/"
	// SelectedNodeAnnotation on a PVC names the node its first consumer
	// was scheduled to (kube-scheduler's annotation).
	SelectedNodeAnnotation = "volume.kubernetes.io/selected-node"
	// StorageNodeAnnotation on a cclm local PV names the node that holds its
	// data. It is an annotation, not node affinity, because a live migration
	// moves the data to another node and node affinity is immutable.
	StorageNodeAnnotation = "cclm.io/storage-node"
)
