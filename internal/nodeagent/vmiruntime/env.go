package vmiruntime

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/qemu"
)

// labNode runs guests inside a lab node's network namespace: taps on the
// node's VM bridge, QEMU started inside the namespace so it opens them.
type labNode struct {
	node   *netlab.Node
	bridge string
	accel  qemu.Accel
}

func (l *labNode) CreateTap(name string) error { return l.node.CreateTap(name, l.bridge, 0) }

func (l *labNode) DeleteTap(name string) error { return l.node.DeleteLink(name) }

func (l *labNode) Launch(ctx context.Context, dom qemu.Domain, opts qemu.Options) (*qemu.Instance, error) {
	opts.Start = l.node.StartProcess
	opts.Accel = l.accel // chosen once at the agent's start, for every guest
	return qemu.Launch(ctx, dom, opts)
}

// migrationInterface is the name of a node's migration interface, as the
// OpenShift guide's virt-handlers show it.
const migrationInterface = "migration0"

// Address is the node's IPv4 address on migration0.
func (l *labNode) Address() (netip.Addr, error) {
	links, err := l.node.Links()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, link := range links {
		if link.Name != migrationInterface {
			continue
		}
		for _, prefix := range link.Addresses {
			if prefix.Addr().Is4() {
				return prefix.Addr(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s has no IPv4 address on %s: is the KubeVirt CR's spec.configuration.migrations.network set and its NetworkAttachmentDefinition valid?", l.node.Name, migrationInterface)
}

// FreePort finds a TCP port free on the migration address inside the node.
func (l *labNode) FreePort() (int, error) {
	address, err := l.Address()
	if err != nil {
		return 0, err
	}
	listener, err := l.node.Listen("tcp", net.JoinHostPort(address.String(), "0"))
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}
