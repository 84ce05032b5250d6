package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
)

// DefaultPoolNamespace is where whereabouts keeps its IPPools by default.
const DefaultPoolNamespace = "kube-system"

// maxAttempts bounds the read-modify-write rounds of one Allocate or
// Release. Every round an allocator loses is one another allocator won, so
// N allocators racing need at most N-1 retries; the jittered backoff spreads
// larger bursts (a whole cluster's node agents starting at once).
const maxAttempts = 50

// Allocator hands out addresses of a NAD's IPAM to holders named by a
// unique id (cclm's node agents use the node name).
type Allocator interface {
	// Allocate gives id an address, with the range's prefix length. It is
	// idempotent: the same id gets the address it already holds.
	Allocate(ctx context.Context, id, podref string) (netip.Prefix, error)
	// Release frees whatever id holds; holding nothing is fine.
	Release(ctx context.Context, id string) error
}

// NewAllocator returns the Allocator of an IPAM: for whereabouts one that
// records allocations in the IPPool of the range in poolNamespace (""
// means DefaultPoolNamespace) with ifName as each allocation's interface;
// for static one that gives every holder the first listed address, which
// only suits a network with a single holder.
func NewAllocator(kube client.Client, ipam IPAM, poolNamespace, ifName string) (Allocator, error) {
	switch ipam.Type {
	case TypeWhereabouts:
		if poolNamespace == "" {
			poolNamespace = DefaultPoolNamespace
		}
		return &poolAllocator{kube: kube, ipam: ipam, namespace: poolNamespace, ifName: ifName, attempts: maxAttempts}, nil
	case TypeStatic:
		return staticAllocator{address: ipam.Addresses[0]}, nil
	case "":
		return nil, errors.New(`the NAD has no ipam section, so there is no address to give; add one, e.g. "ipam": {"type": "whereabouts", "range": "192.168.201.0/24"}`)
	}
	return nil, fmt.Errorf("ipam.type %q cannot allocate", ipam.Type)
}

// poolAllocator allocates from an IPPool the way whereabouts does.
type poolAllocator struct {
	kube      client.Client
	ipam      IPAM
	namespace string
	ifName    string
	attempts  int // read-modify-write rounds before giving up
}

func (a *poolAllocator) Allocate(ctx context.Context, id, podref string) (netip.Prefix, error) {
	holder := whereaboutsv1alpha1.IPAllocation{ContainerID: id, PodRef: podref, IfName: a.ifName}
	var address netip.Addr
	err := a.updatePool(ctx, true, func(allocations Allocations) (changed bool, err error) {
		address, changed, err = reserve(a.ipam, allocations, holder)
		return changed, err
	})
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allocate an address for %s from IPPool %s/%s: %w", id, a.namespace, a.ipam.PoolName(), err)
	}
	return netip.PrefixFrom(address, a.ipam.Range.Bits()), nil
}

func (a *poolAllocator) Release(ctx context.Context, id string) error {
	err := a.updatePool(ctx, false, func(allocations Allocations) (bool, error) {
		return release(allocations, id), nil
	})
	if err != nil {
		return fmt.Errorf("release the address of %s in IPPool %s/%s: %w", id, a.namespace, a.ipam.PoolName(), err)
	}
	return nil
}

// updatePool reads the pool, lets change modify its allocations and writes
// it back with the resourceVersion it read (optimistic locking). When
// another writer got there first it starts over from a fresh read, so a
// change is only ever made to the current allocations. A missing pool is
// created if create is set, else there is nothing to change.
func (a *poolAllocator) updatePool(ctx context.Context, create bool, change func(Allocations) (bool, error)) error {
	err := retry.OnError(a.backoff(), lostRace, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		pool, exists, err := a.readPool(ctx)
		if err != nil || (!exists && !create) {
			return err
		}
		changed, err := change(pool.Spec.Allocations)
		if err != nil || !changed {
			return err
		}
		return a.writePool(ctx, pool, exists)
	})
	if lostRace(err) {
		return fmt.Errorf("other allocators changed the pool first %d times in a row; try again", a.attempts)
	}
	return err
}

// backoff spreads the rounds with a random pause that grows slowly with
// the round, so that the losers of a race do not collide again in
// lockstep. (No Cap: wait.Backoff ends the retries once it reaches one.)
func (a *poolAllocator) backoff() wait.Backoff {
	return wait.Backoff{Duration: 5 * time.Millisecond, Factor: 1.1, Jitter: 1, Steps: a.attempts}
}

// readPool gets the pool, or a new one to create if it does not exist.
func (a *poolAllocator) readPool(ctx context.Context) (pool *whereaboutsv1alpha1.IPPool, exists bool, err error) {
	pool = &whereaboutsv1alpha1.IPPool{}
	err = a.kube.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.ipam.PoolName()}, pool)
	switch {
	case apierrors.IsNotFound(err):
		pool = &whereaboutsv1alpha1.IPPool{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.ipam.PoolName()},
			Spec:       whereaboutsv1alpha1.IPPoolSpec{Range: a.ipam.Range.String()},
		}
	case err != nil:
		return nil, false, err
	default:
		exists = true
	}
	// The schema requires allocations, so an empty pool stores {} (never
	// null, which the API server would prune and then reject).
	if pool.Spec.Allocations == nil {
		pool.Spec.Allocations = Allocations{}
	}
	return pool, exists, nil
}

// writePool updates the pool read with its resourceVersion, or creates it.
func (a *poolAllocator) writePool(ctx context.Context, pool *whereaboutsv1alpha1.IPPool, exists bool) error {
	if exists {
		return a.kube.Update(ctx, pool)
	}
	return a.kube.Create(ctx, pool)
}

// lostRace reports whether a write failed because another writer changed
// (or created) the pool since it was read.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// staticAllocator is a static IPAM: every holder gets the same address.
type staticAllocator struct{ address netip.Prefix }

func (s staticAllocator) Allocate(context.Context, string, string) (netip.Prefix, error) {
	return s.address, nil
}

func (staticAllocator) Release(context.Context, string) error { return nil }
