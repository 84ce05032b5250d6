// Package qemu is cclm's hypervisor driver: what virt-launcher and libvirt
// do for KubeVirt. It turns a Domain (a plain description of a VM) into a
// QEMU command line, starts QEMU so that it outlives the node agent that
// started it, re-adopts a running QEMU after the node agent restarts, and
// drives it over QMP: state, events, shutdown, and the data path of a live
// migration.
//
// # Live migration, as composed by the node agents
//
// Both sides run the same Domain, so that the target has the same devices
// (the run directory, tap names and disk paths may differ). Disks are not
// shared: the target exports fresh, equally sized disk files over NBD and
// the source mirrors into them, as libvirt does for KubeVirt.
//
//	target                                   source
//	CreateRawDisk per disk (source size)
//	Launch(Options{Incoming: true})
//	AddTLSCredentials(dir, TLSServer)        AddTLSCredentials(dir, TLSClient)
//	ConfigureMigration(RoleTarget, p)        ConfigureMigration(RoleSource, p)
//	StartNBDServer(addr, tls)
//	ExportDisks(names, writable)
//	MigrateIncoming(uri)
//	                                         MirrorDisks(nbd, names)  (waits for READY)
//	                                         Migrate(uri)
//	                                         WaitMigration -> "pre-switchover"
//	                                           (guest paused, memory sent)
//	                                         CompleteMirrors(names)  (block-job-cancel
//	                                           of the READY mirrors: the target holds
//	                                           the disks as of the pause)
//	                                         ContinueMigration
//	                                         WaitMigration -> "completed"
//	WaitIncoming
//	StopNBDServer, Resume, AnnounceSelf
//	                                         Quit  (only once the target runs)
//
// The two columns run concurrently, one per node agent. pause-before-
// switchover is what libvirt uses for storage migration: the mirrors are
// finished while the guest is paused and before the device state is sent,
// so the target never runs on a disk that misses a write (libvirt's older
// order, block-job-cancel after "completed", gives the same guarantee only
// if the target is not resumed before the cancel returns). Should anything
// fail before the target runs, CancelMigration on the source and Kill on
// the target leave the VM running where it was; QEMU resumes the source
// itself when a migration it paused is cancelled.
//
// With PostCopy, the source calls StartPostcopy after Migrate (or when the
// migration does not converge); WaitIncoming then returns at
// "postcopy-active" and the target must be resumed at once, while the
// source stays up until its WaitMigration reports "completed". A failure
// after the switch loses the VM, which is why post-copy is opt-in.
//
// # QEMU 7.2 notes
//
//   - query-migrate reports total-time and downtime as 0 for a migration
//     that paused in pre-switchover; QueryMigrate fills them from the
//     timestamps of the STOP and MIGRATION events (TimesFromEvents).
//   - A target whose incoming migration fails exits by itself.
//   - blockdev-mirror needs a target of exactly the source's size, and has
//     no "target-is-zero": it first zeroes the whole NBD target in one
//     write-zeroes request (cheap with discard=unmap on both ends).
//   - multifd and postcopy-ram can be enabled together but do not work
//     together; MigrationParams never enables both.
//   - QEMU's default max-bandwidth is 128 MiB/s: "unlimited" must be set.
package qemu
