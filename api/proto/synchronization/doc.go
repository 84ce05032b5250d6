// Package synchronization is the gRPC protocol between the synchronization
// controllers of two clusters in a decentralized (cross-cluster) live
// migration: upstream KubeVirt's kubevirt.synchronization service, with its
// messages and field numbers, so that cclm and KubeVirt clusters can talk.
// The code is generated from synchronization.proto (`make proto`);
// internal/synccontroller serves and calls it.
package synchronization
