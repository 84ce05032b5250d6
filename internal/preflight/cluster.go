package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// cluster is one side: its clients and what was read of it, read once.
type cluster struct {
	side Side
	name string // for messages, e.g. ocp7
	host string // API server URL, for messages
	// client reads; on the source it carries the Provider's token.
	client client.Client
	// nodeReader reads Nodes: client, or Input.SourceNodes' client.
	nodeReader client.Reader
	version    func(context.Context) (*version.Info, error)

	kubeVirt  memo[*kubevirtv1.KubeVirt]
	nodes     memo[[]corev1.Node]
	classes   memo[[]storagev1.StorageClass]
	vms       memo[[]kubevirtv1.VirtualMachine]
	vmis      memo[[]kubevirtv1.VirtualMachineInstance]
	pvcs      memo[[]corev1.PersistentVolumeClaim]
	pvs       memo[[]corev1.PersistentVolume]
	serverVer memo[*version.Info]
}

// memo is a value read once, with the error of that read.
type memo[T any] struct {
	done  bool
	value T
	err   error
}

func (m *memo[T]) get(read func() (T, error)) (T, error) {
	if !m.done {
		m.value, m.err = read()
		// A read cut short by one check's deadline may succeed for the next.
		m.done = !errors.Is(m.err, context.DeadlineExceeded)
	}
	return m.value, m.err
}

// errNoKubeVirt: the namespace holds no KubeVirt CR.
var errNoKubeVirt = errors.New("no KubeVirt CR")

// getKubeVirt is the KubeVirt CR of virtNamespace; with several, the first
// by name, as the node agents and the sync controller pick it.
func (c *cluster) getKubeVirt(ctx context.Context, virtNamespace string) (*kubevirtv1.KubeVirt, error) {
	return c.kubeVirt.get(func() (*kubevirtv1.KubeVirt, error) {
		var list kubevirtv1.KubeVirtList
		if err := c.client.List(ctx, &list, client.InNamespace(virtNamespace)); err != nil {
			return nil, err
		}
		if len(list.Items) == 0 {
			return nil, errNoKubeVirt
		}
		first := slices.MinFunc(list.Items, func(a, b kubevirtv1.KubeVirt) int { return strings.Compare(a.Name, b.Name) })
		return &first, nil
	})
}

func (c *cluster) listNodes(ctx context.Context) ([]corev1.Node, error) {
	return c.nodes.get(func() ([]corev1.Node, error) {
		var list corev1.NodeList
		err := c.client.List(ctx, &list)
		slices.SortFunc(list.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
		return list.Items, err
	})
}

func (c *cluster) listClasses(ctx context.Context) ([]storagev1.StorageClass, error) {
	return c.classes.get(func() ([]storagev1.StorageClass, error) {
		var list storagev1.StorageClassList
		err := c.client.List(ctx, &list)
		slices.SortFunc(list.Items, func(a, b storagev1.StorageClass) int { return strings.Compare(a.Name, b.Name) })
		return list.Items, err
	})
}

func (c *cluster) listVMs(ctx context.Context) ([]kubevirtv1.VirtualMachine, error) {
	return c.vms.get(func() ([]kubevirtv1.VirtualMachine, error) {
		var list kubevirtv1.VirtualMachineList
		err := c.client.List(ctx, &list)
		return list.Items, err
	})
}

func (c *cluster) listVMIs(ctx context.Context) ([]kubevirtv1.VirtualMachineInstance, error) {
	return c.vmis.get(func() ([]kubevirtv1.VirtualMachineInstance, error) {
		var list kubevirtv1.VirtualMachineInstanceList
		err := c.client.List(ctx, &list)
		return list.Items, err
	})
}

func (c *cluster) listPVCs(ctx context.Context) ([]corev1.PersistentVolumeClaim, error) {
	return c.pvcs.get(func() ([]corev1.PersistentVolumeClaim, error) {
		var list corev1.PersistentVolumeClaimList
		err := c.client.List(ctx, &list)
		return list.Items, err
	})
}

func (c *cluster) listPVs(ctx context.Context) ([]corev1.PersistentVolume, error) {
	return c.pvs.get(func() ([]corev1.PersistentVolume, error) {
		var list corev1.PersistentVolumeList
		err := c.client.List(ctx, &list)
		return list.Items, err
	})
}

func (c *cluster) serverVersion(ctx context.Context) (*version.Info, error) {
	return c.serverVer.get(func() (*version.Info, error) { return c.version(ctx) })
}

// kubectl is the start of a kubectl command line for this side.
func (c *cluster) kubectl() string {
	if c.name == "" || c.name == string(c.side) {
		return "kubectl"
	}
	return "kubectl --context " + c.name
}

// label names the side in messages: "ocp7 (the source)".
func (c *cluster) label() string {
	if c.name == "" || c.name == string(c.side) {
		return "the " + string(c.side) + " cluster"
	}
	return c.name + " (the " + string(c.side) + ")"
}

// readFailure is a failed check for a read that did not work: what was
// tried, the error, and what to do about that kind of error.
func (r *runner) readFailure(c *cluster, what string, err error) Check {
	check := Check{Side: c.side, Status: Failed}
	switch {
	case apierrors.IsForbidden(err):
		if c.side == Source {
			check.Message = fmt.Sprintf("the token may not %s on %s: %v", what, c.label(), err)
			check.Fix = r.permissionFix()
		} else {
			check.Message = fmt.Sprintf("the credentials used for %s may not %s: %v", c.label(), what, err)
			check.Fix = fmt.Sprintf("grant that read to the account preflight runs as on %s (for a Plan: the toolkit's ServiceAccount forklift-controller in %s)", c.name, r.in.ToolkitNamespace)
		}
	case apierrors.IsUnauthorized(err):
		check.Message = fmt.Sprintf("%s rejected the credentials (401 Unauthorized) when trying to %s: token invalid or revoked", c.label(), what)
		check.Fix = r.tokenFix(c)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource"):
		check.Message = fmt.Sprintf("%s does not serve the API needed to %s: %v", c.label(), what, err)
		check.Fix = fmt.Sprintf("install cclm's CRDs on %s (`cclm lab up` does in the lab)", c.name)
	default:
		check.Message = fmt.Sprintf("cannot %s on %s (API server %s): %v", what, c.label(), c.host, err)
		check.Fix = fmt.Sprintf("check that %s's API server %s is reachable from here and healthy, then run preflight again", c.name, c.host)
	}
	return check
}

// permissionFix is the fix for a source token that lacks rights.
func (r *runner) permissionFix() string {
	return fmt.Sprintf("grant the missing rights to the token's ServiceAccount through ClusterRole %s (the OpenShift guide's clusterrole.yaml in examples/openshift) and its binding on %s: `cclm connect --source %s --target %s` applies both",
		ClusterRoleName, r.source.name, r.source.name, r.target.name)
}

// tokenFix is the fix for credentials the server rejects.
func (r *runner) tokenFix(c *cluster) string {
	if c.side == Target {
		return fmt.Sprintf("renew the credentials of %s in your kubeconfig", c.name)
	}
	return fmt.Sprintf("make a new token and store it in the Provider's Secret: `cclm connect --source %s --target %s` does both (on %s: Secret cclm in %s, type kubernetes.io/service-account-token)",
		r.source.name, r.target.name, r.source.name, r.in.ToolkitNamespace)
}

// ClusterRoleName is the OpenShift guide's ClusterRole for the Provider's
// token.
const ClusterRoleName = "live-migration-role"

func passed(format string, args ...any) Check {
	return Check{Status: Passed, Message: fmt.Sprintf(format, args...)}
}

func failed(message, fix string) Check {
	return Check{Status: Failed, Message: message, Fix: fix}
}

func skipped(format string, args ...any) Check {
	return Check{Status: Skipped, Message: fmt.Sprintf(format, args...)}
}
