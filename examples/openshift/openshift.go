// Package openshift holds the YAML files of the OpenShift guide cclm
// follows ("Cross cluster live migration": the source cluster ocp7 and the
// target ocp1 joined by an L2 migration network, VLAN 2001), byte for byte
// as the guide publishes them, plus the two operator settings the guide
// gives as snippets (hyperconverged.yaml, forkliftcontroller.yaml). A
// reader applies them with kubectl; cclm embeds them so that what it
// applies itself (`cclm connect` the ClusterRole, `cclm lab up` the
// NodeNetworkConfigurationPolicy) is the very same bytes, and its tests
// read them from here, so the repository needs nothing beside it.
package openshift

import (
	"embed"
	"fmt"
)

// The files, by their names in the guide.
const (
	// ClusterRoleFile is the ClusterRole live-migration-role that the
	// Provider's token on ocp7 is bound to.
	ClusterRoleFile = "clusterrole.yaml"
	// NNCPFile is the NodeNetworkConfigurationPolicy that makes br-2001
	// with port enp2s0 on every worker of both clusters.
	NNCPFile = "coe-bridge-via-enp2s0.yaml"
	// HostNADFile is the NAD that gives the clusters' node VMs their second
	// interface on the hosting cluster; the lab's network fabric plays it.
	HostNADFile = "isar-2001-net-attach-def.yaml"
	// HyperConvergedFile sets the migration network and the decentralized
	// live migration gate, on both clusters.
	HyperConvergedFile = "hyperconverged.yaml"
	// ForkliftControllerFile enables live migration plans, on ocp1.
	ForkliftControllerFile = "forkliftcontroller.yaml"
)

// MigrationNADFile is the migration network's NAD of cluster ocp1 or ocp7
// (livemigration-network; each excludes the other's half of the range).
func MigrationNADFile(cluster string) string { return cluster + ".net-attach-def.yaml" }

// Files holds every YAML file of the folder.
//
//go:embed *.yaml
var Files embed.FS

// ClusterRoleYAML is clusterrole.yaml.
func ClusterRoleYAML() []byte { return mustRead(ClusterRoleFile) }

// NNCPYAML is coe-bridge-via-enp2s0.yaml.
func NNCPYAML() []byte { return mustRead(NNCPFile) }

// HyperConvergedYAML is hyperconverged.yaml.
func HyperConvergedYAML() []byte { return mustRead(HyperConvergedFile) }

// ForkliftControllerYAML is forkliftcontroller.yaml.
func ForkliftControllerYAML() []byte { return mustRead(ForkliftControllerFile) }

// mustRead returns a fresh copy of an embedded file. The names are the
// constants above and the embed pattern covers them, so a miss is a
// broken build, not a runtime condition.
func mustRead(name string) []byte {
	data, err := Files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("examples/openshift: %s is not embedded: %v", name, err))
	}
	return data
}
