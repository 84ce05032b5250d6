// Package nodemeta names what a node agent publishes on its Node for other
// components to read: how to reach the node's API, and which QEMU and
// accelerator its guests run under. It is a leaf: it imports nothing of
// cclm's, so that readers (the CLI, the lab) need not link the node agent.
package nodemeta

// Node annotations written by the node agent's registration.
const (
	// APICertAnnotation holds the SHA-256 of the node agent's serving
	// certificate: clients pin it, trusting it because the API server
	// told them.
	APICertAnnotation = "cclm.io/node-api-certificate-sha256"
	// AccelAnnotation names the accelerator the node's guests run under
	// (kvm or tcg); AccelReasonAnnotation says why it was chosen.
	AccelAnnotation       = "cclm.io/accelerator"
	AccelReasonAnnotation = "cclm.io/accelerator-reason"
	// QEMUVersionAnnotation is the version of the QEMU the guests run in.
	QEMUVersionAnnotation = "cclm.io/qemu-version"
)
