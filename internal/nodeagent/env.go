package nodeagent

import (
	"context"
	"fmt"

	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/qemu"
)

// labNode runs guests inside a lab node's network namespace: taps on the
// node's VM bridge, QEMU started inside the namespace so it opens them.
type labNode struct {
	node   *netlab.Node
	bridge string
}

func newRuntimeEnv(opts Options) (runtimeEnv, error) {
	if opts.LabID == "" {
		return nil, fmt.Errorf("--lab-id is empty: only lab nodes are supported so far (each node is a network namespace of `cclm lab`)")
	}
	node, err := netlab.OpenNode(opts.LabID, opts.NodeName)
	if err != nil {
		return nil, fmt.Errorf("open lab node %s: %w", opts.NodeName, err)
	}
	return &labNode{node: node, bridge: opts.VMBridge}, nil
}

func (l *labNode) CreateTap(name string) error { return l.node.CreateTap(name, l.bridge, 0) }

func (l *labNode) DeleteTap(name string) error { return l.node.DeleteLink(name) }

func (l *labNode) Launch(ctx context.Context, dom qemu.Domain, opts qemu.Options) (*qemu.Instance, error) {
	opts.Start = l.node.StartProcess
	return qemu.Launch(ctx, dom, opts)
}
