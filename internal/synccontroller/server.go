package synccontroller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	syncpb "github.com/cclm-io/cclm/api/proto/synchronization"
)

// Timeouts of the server's life cycle.
const (
	// listenTimeout: a new leader may have to wait for the old one, in the
	// same network namespace, to close the port.
	listenTimeout = 15 * time.Second
	// stopTimeout: calls in flight get this long to finish.
	stopTimeout = 5 * time.Second
)

// server serves the Synchronize service while this replica leads.
type server struct {
	syncpb.UnimplementedSynchronizeServer
	*controller
}

// NeedLeaderElection: only the leader serves.
func (s *server) NeedLeaderElection() bool { return true }

// Start serves until ctx ends.
func (s *server) Start(ctx context.Context) error {
	if err := s.auth.trust.waitLoaded(ctx); err != nil {
		return fmt.Errorf("sync controller: serve at %s: %w", s.address, err)
	}
	listener, err := listenWithin(ctx, s.opts.Listen, s.address, listenTimeout)
	if err != nil {
		return fmt.Errorf("sync controller: serve at %s: %w", s.address, err)
	}
	grpcServer := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.auth.serverConfig())),
		grpc.ChainUnaryInterceptor(s.calls.ServerInterceptor(), s.auth.recheckCaller),
		grpc.MaxRecvMsgSize(2*maxStatusJSON),
	)
	syncpb.RegisterSynchronizeServer(grpcServer, s)
	served := make(chan error, 1)
	go func() { served <- grpcServer.Serve(listener) }()
	s.logger.Info("serving synchronization", "address", s.address)
	select {
	case err := <-served:
		return fmt.Errorf("sync controller: serving at %s stopped: %w", s.address, err)
	case <-ctx.Done():
		stopWithin(grpcServer, stopTimeout)
		return nil
	}
}

// listenWithin listens, retrying while the address is still in use.
func listenWithin(ctx context.Context, listen func(network, address string) (net.Listener, error), address string, timeout time.Duration) (net.Listener, error) {
	var listener net.Listener
	var err error
	waitErr := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		listener, err = listen("tcp", address)
		return err == nil || !errors.Is(err, syscall.EADDRINUSE), nil
	})
	if waitErr != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return listener, err
}

func stopWithin(grpcServer *grpc.Server, timeout time.Duration) {
	stopped := make(chan struct{})
	go func() {
		grpcServer.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(timeout):
		grpcServer.Stop()
	}
}

// SyncSourceMigrationStatus: the source cluster reports; this is the target.
func (s *server) SyncSourceMigrationStatus(ctx context.Context, request *syncpb.VMIStatusRequest) (*syncpb.VMIStatusResponse, error) {
	return s.receiveStatus(ctx, request, roleSource)
}

// SyncTargetMigrationStatus: the target cluster reports; this is the source.
func (s *server) SyncTargetMigrationStatus(ctx context.Context, request *syncpb.VMIStatusRequest) (*syncpb.VMIStatusResponse, error) {
	return s.receiveStatus(ctx, request, roleTarget)
}

// receiveStatus copies the sender's half into the local VMI of the
// migration the request names.
func (s *server) receiveStatus(ctx context.Context, request *syncpb.VMIStatusRequest, sender role) (*syncpb.VMIStatusResponse, error) {
	if request.GetMigrationID() == "" {
		return nil, status.Error(codes.InvalidArgument, "migrationID is empty")
	}
	peerStatus, err := parseVMIStatus(request.GetVmiStatus().GetVmiStatusJson())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	m, err := s.migrationByID(ctx, request.GetMigrationID(), sender.peer())
	if err != nil {
		return nil, err
	}
	s.contacts.heard(client.ObjectKeyFromObject(m), sender.peer(), request.GetMigrationID(), s.now())
	vmi, err := s.localVMI(ctx, m)
	if err != nil {
		return nil, err
	}
	if why := notForThisVMI(m, vmi); why != "" {
		// Answered, not refused: the peer has nothing to retry.
		return &syncpb.VMIStatusResponse{Message: "ignored: " + why}, nil
	}
	updated := vmi.DeepCopy()
	applyPeerStatus(&updated.Status, peerStatus, sender)
	if !statusChanged(&vmi.Status, &updated.Status) {
		return &syncpb.VMIStatusResponse{Message: fmt.Sprintf("VMI %s is up to date", client.ObjectKeyFromObject(vmi))}, nil
	}
	if err := s.patchVMIStatus(ctx, vmi, updated); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &syncpb.VMIStatusResponse{Message: fmt.Sprintf("VMI %s updated", client.ObjectKeyFromObject(vmi))}, nil
}

// CancelMigration aborts the local side of the migration the peer names.
func (s *server) CancelMigration(ctx context.Context, request *syncpb.MigrationCancelRequest) (*syncpb.MigrationCancelResponse, error) {
	if request.GetMigrationUID() == "" {
		return nil, status.Error(codes.InvalidArgument, "migrationUID is empty")
	}
	m, err := s.migrationToCancel(ctx, request.GetMigrationUID())
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(m)
	s.contacts.heard(key, roleOf(m), migrationIDOf(m), s.now())
	vmi, err := s.localVMI(ctx, m)
	if err != nil {
		return nil, err
	}
	if why := notForThisVMI(m, vmi); why != "" {
		return &syncpb.MigrationCancelResponse{Message: "nothing to cancel: " + why}, nil
	}
	updated := vmi.DeepCopy()
	if !applyCancel(&updated.Status) {
		return &syncpb.MigrationCancelResponse{Message: fmt.Sprintf("migration %s already completed; nothing to cancel", key)}, nil
	}
	if statusChanged(&vmi.Status, &updated.Status) {
		if err := s.patchVMIStatus(ctx, vmi, updated); err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		s.logger.Info("migration cancelled by the peer", "migration", key.String(), "reason", CancelledByPeerReason)
		s.recorder.Eventf(m, vmi, corev1.EventTypeWarning, "CancelledByPeer", "Abort", "the peer cluster cancelled migration %s (ID %s)", key, migrationIDOf(m))
	}
	return &syncpb.MigrationCancelResponse{Message: fmt.Sprintf("migration %s aborted", key)}, nil
}

// migrationByID finds the local VMIM of the given side with that migration
// ID. Not finding it is NotFound, which the caller retries: the local VMIM
// may simply not be made yet.
func (s *server) migrationByID(ctx context.Context, migrationID string, local role) (*kubevirtv1.VirtualMachineInstanceMigration, error) {
	migrations, err := s.listMigrations(ctx, indexMigrationID, migrationID)
	if err != nil {
		return nil, err
	}
	migrations = slices.DeleteFunc(migrations, func(m kubevirtv1.VirtualMachineInstanceMigration) bool { return roleOf(&m) != local })
	field := "sendTo"
	if local == roleTarget {
		field = "receive"
	}
	return pickMigration(migrations, fmt.Sprintf("spec.%s.migrationID %q", field, migrationID))
}

// migrationToCancel finds the local VMIM by UID; a peer that never heard
// from this side knows only the migration ID, which is accepted too.
func (s *server) migrationToCancel(ctx context.Context, migrationUID string) (*kubevirtv1.VirtualMachineInstanceMigration, error) {
	migrations, err := s.listMigrations(ctx, indexUID, migrationUID)
	if err == nil && len(migrations) == 0 {
		migrations, err = s.listMigrations(ctx, indexMigrationID, migrationUID)
	}
	if err != nil {
		return nil, err
	}
	return pickMigration(migrations, fmt.Sprintf("UID or migration ID %q", migrationUID))
}

func (s *server) listMigrations(ctx context.Context, index, value string) ([]kubevirtv1.VirtualMachineInstanceMigration, error) {
	var list kubevirtv1.VirtualMachineInstanceMigrationList
	if err := s.client.List(ctx, &list, client.MatchingFields{index: value}); err != nil {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("list migrations: %v", err))
	}
	return list.Items, nil
}

// pickMigration is the one migration not over among candidates, else the
// newest.
func pickMigration(candidates []kubevirtv1.VirtualMachineInstanceMigration, described string) (*kubevirtv1.VirtualMachineInstanceMigration, error) {
	if len(candidates) == 0 {
		return nil, status.Error(codes.NotFound, fmt.Sprintf("no decentralized VirtualMachineInstanceMigration in this cluster has %s (yet)", described))
	}
	active := slices.DeleteFunc(slices.Clone(candidates), func(m kubevirtv1.VirtualMachineInstanceMigration) bool { return m.IsFinal() })
	switch len(active) {
	case 0:
		newest := slices.MaxFunc(candidates, func(a, b kubevirtv1.VirtualMachineInstanceMigration) int {
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		})
		return &newest, nil
	case 1:
		return &active[0], nil
	}
	return nil, status.Error(codes.FailedPrecondition, fmt.Sprintf("%d unfinished migrations in this cluster have %s (%s and %s, ...); delete all but one",
		len(active), described, client.ObjectKeyFromObject(&active[0]), client.ObjectKeyFromObject(&active[1])))
}

// localVMI is the VMI of a migration, as a gRPC error if missing.
func (s *server) localVMI(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) (*kubevirtv1.VirtualMachineInstance, error) {
	vmi, err := s.vmiOf(ctx, m)
	switch {
	case err != nil:
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("read VMI %s/%s: %v", m.Namespace, m.Spec.VMIName, err))
	case vmi == nil:
		return nil, status.Error(codes.NotFound, fmt.Sprintf("VMI %s/%s of migration %s does not exist (yet)", m.Namespace, m.Spec.VMIName, m.Name))
	}
	return vmi, nil
}
