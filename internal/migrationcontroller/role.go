package migrationcontroller

import (
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// role is the part a VMIM plays: a whole in-cluster migration, or one half
// of a decentralized (cross-cluster) one.
type role int

const (
	roleClassic role = iota // neither spec.sendTo nor spec.receive
	roleSource              // spec.sendTo: the VMI leaves this cluster
	roleTarget              // spec.receive: the VMI arrives in this cluster
)

func roleOf(m *kubevirtv1.VirtualMachineInstanceMigration) role {
	switch {
	case m.IsDecentralizedSource():
		return roleSource
	case m.IsDecentralizedTarget():
		return roleTarget
	}
	return roleClassic
}

func (r role) String() string {
	switch r {
	case roleSource:
		return "source (spec.sendTo)"
	case roleTarget:
		return "target (spec.receive)"
	}
	return "in-cluster"
}

func (r role) decentralized() bool { return r != roleClassic }

// phases are the phases a migration of the role goes through, in order,
// final ones left out.
func (r role) phases() []kubevirtv1.VirtualMachineInstanceMigrationPhase {
	switch r {
	case roleSource:
		return []kubevirtv1.VirtualMachineInstanceMigrationPhase{kubevirtv1.MigrationPending, kubevirtv1.MigrationSynchronizing,
			kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning}
	case roleTarget:
		return []kubevirtv1.VirtualMachineInstanceMigrationPhase{kubevirtv1.MigrationPending, kubevirtv1.MigrationWaitingForSync,
			kubevirtv1.MigrationScheduled, kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning}
	}
	return []kubevirtv1.VirtualMachineInstanceMigrationPhase{kubevirtv1.MigrationPending, kubevirtv1.MigrationScheduling,
		kubevirtv1.MigrationScheduled, kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning}
}

// handoffPhase is the phase entered when the controller writes the
// migration's state into the VMI, handing it to the agents (and, for a
// decentralized migration, to the synchronization controller).
func (r role) handoffPhase() kubevirtv1.VirtualMachineInstanceMigrationPhase {
	if r == roleSource {
		return kubevirtv1.MigrationSynchronizing
	}
	return kubevirtv1.MigrationScheduled
}
