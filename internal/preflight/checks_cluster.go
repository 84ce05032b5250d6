package preflight

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/ipam"
)

// TokenValid: the source API server accepts the token (a
// SelfSubjectReview, which also tells who it is).
func checkTokenValid(ctx context.Context, r *runner) Check {
	c := r.source
	review := &authenticationv1.SelfSubjectReview{}
	err := c.client.Create(ctx, review)
	if err == nil {
		r.identity = review.Status.UserInfo.Username
		return passed("%s's API server %s accepts the token: it authenticates as %s", c.name, c.host, orUnknown(r.identity))
	}
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		// A server without SelfSubjectReview (Kubernetes < 1.28): any
		// authenticated call tells whether the token is good.
		if _, err = c.serverVersion(ctx); err == nil {
			return passed("%s's API server %s accepts the token (it has no SelfSubjectReview API to say whose it is)", c.name, c.host)
		}
	}
	if apierrors.IsUnauthorized(err) {
		return failed(fmt.Sprintf("%s's API server %s rejected the token (401 Unauthorized): token invalid or revoked", c.name, c.host), r.tokenFix(c))
	}
	return r.readFailure(c, "authenticate (SelfSubjectReview)", err)
}

func orUnknown(s string) string {
	if s == "" {
		return "(an unnamed user)"
	}
	return s
}

// permission is one thing the token must be allowed.
type permission struct {
	verb, group, resource, namespace string
}

func (p permission) String() string {
	resource := p.resource
	if p.group != "" {
		resource += "." + p.group
	}
	where := "in every namespace"
	if p.namespace != "" {
		where = "in namespace " + p.namespace
	}
	return p.verb + " " + resource + " " + where
}

// sourceRules are what the toolkit's pipeline (and preflight) do on the
// source with the token, per resource: read the VM, its VMI, PVCs,
// DataVolumes and the Secrets and ConfigMaps it references (copied to the
// target), create the sending VMIM in the VM's namespace, find it again
// after a restart, delete it to cancel or clean up.
var sourceRules = []struct {
	group, resource string
	verbs           []string
}{
	{"kubevirt.io", "virtualmachines", []string{"get", "list"}},
	{"kubevirt.io", "virtualmachineinstances", []string{"get", "list"}},
	{"kubevirt.io", "virtualmachineinstancemigrations", []string{"get", "list", "create", "delete"}},
	{"", "persistentvolumeclaims", []string{"get", "list"}},
	{"cdi.kubevirt.io", "datavolumes", []string{"get", "list"}},
	// Read by name only: the toolkit never lists them.
	{"", "secrets", []string{"get"}},
	{"", "configmaps", []string{"get"}},
}

// virtRules are what the token does in the virt namespace: read the
// KubeVirt CR (gate, sync address, migration network) and the migration
// NAD, and keep the migration trust (kubevirt-ca, kubevirt-external-ca).
var virtRules = []struct {
	group, resource string
	verbs           []string
}{
	{"kubevirt.io", "kubevirts", []string{"get", "list"}},
	{"k8s.cni.cncf.io", "network-attachment-definitions", []string{"get"}},
	// SynchronizeCertificates: the CAs read, the target's imported into
	// kubevirt-external-ca (made if absent).
	{"", "configmaps", []string{"get", "create", "update"}},
}

// requiredPermissions lists what the token needs: sourceRules in each VM's
// namespace (every namespace when a VM has none, or no VM is given), and
// virtRules in the virt namespace; in one cluster the trust is only read
// (there is no peer CA to import).
func requiredPermissions(vms []forkliftv1beta1.Ref, virtNamespace string, sameCluster bool) []permission {
	var namespaces []string
	for _, vm := range vms {
		namespaces = append(namespaces, vm.Namespace)
	}
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)
	if namespaces[0] == "" {
		namespaces = []string{""} // every namespace covers the others
	}
	var perms []permission
	for _, ns := range namespaces {
		for _, rule := range sourceRules {
			for _, verb := range rule.verbs {
				perms = append(perms, permission{verb, rule.group, rule.resource, ns})
			}
		}
	}
	for _, rule := range virtRules {
		for _, verb := range rule.verbs {
			if sameCluster && rule.resource == "configmaps" && verb != "get" {
				continue
			}
			perms = append(perms, permission{verb, rule.group, rule.resource, virtNamespace})
		}
	}
	return perms
}

// TokenPermissions: a SelfSubjectAccessReview, as the token, for each
// permission the pipeline needs on the source.
func checkTokenPermissions(ctx context.Context, r *runner) Check {
	perms := requiredPermissions(r.in.VMs, r.in.VirtNamespace, r.in.SameCluster)
	var denied []permission
	for _, p := range perms {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: p.verb, Group: p.group, Resource: p.resource, Namespace: p.namespace},
		}}
		if err := r.source.client.Create(ctx, review); err != nil {
			return r.readFailure(r.source, "review its own access (SelfSubjectAccessReview)", err)
		}
		if !review.Status.Allowed || review.Status.Denied {
			denied = append(denied, p)
		}
	}
	return evalPermissions(r, perms, denied)
}

// evalPermissions turns the denied permissions into the check.
func evalPermissions(r *runner, all, denied []permission) Check {
	who := "the token"
	if r.identity != "" {
		who += " (" + r.identity + ")"
	}
	if len(denied) == 0 {
		return passed("%s may do all %d things the migration needs on %s: %s", who, len(all), r.source.name, summarize(all))
	}
	var missing []string
	for _, p := range denied {
		missing = append(missing, p.String())
	}
	return failed(
		fmt.Sprintf("%s may not do %d of the %d things the migration needs on %s: %s", who, len(denied), len(all), r.source.name, strings.Join(missing, "; ")),
		r.permissionFix()+"; the rules missing: "+rulesFor(denied))
}

// resourceVerbs is a set of permissions grouped by resource, in the
// order the resources first appear, each with its verbs once.
type resourceVerbs struct {
	group, resource string
	verbs           []string
}

func groupByResource(perms []permission) []resourceVerbs {
	var grouped []resourceVerbs
	index := map[[2]string]int{}
	for _, p := range perms {
		k := [2]string{p.group, p.resource}
		i, ok := index[k]
		if !ok {
			i = len(grouped)
			index[k] = i
			grouped = append(grouped, resourceVerbs{group: p.group, resource: p.resource})
		}
		if !slices.Contains(grouped[i].verbs, p.verb) {
			grouped[i].verbs = append(grouped[i].verbs, p.verb)
		}
	}
	return grouped
}

// summarize groups permissions as "get/list virtualmachines.kubevirt.io, ...".
func summarize(perms []permission) string {
	var parts []string
	for _, g := range groupByResource(perms) {
		resource := g.resource
		if g.group != "" {
			resource += "." + g.group
		}
		parts = append(parts, strings.Join(g.verbs, "/")+" "+resource)
	}
	return strings.Join(parts, ", ")
}

// rulesFor writes the ClusterRole rules that would grant perms.
func rulesFor(perms []permission) string {
	var rules []string
	for _, g := range groupByResource(perms) {
		rules = append(rules, fmt.Sprintf("{apiGroups: [%q], resources: [%s], verbs: [%s]}", g.group, g.resource, strings.Join(g.verbs, ", ")))
	}
	return strings.Join(rules, ", ")
}

// ToolkitEnabled: a ForkliftController in the toolkit namespace of the
// target enables OCP live migration.
func checkToolkitEnabled(ctx context.Context, r *runner) Check {
	var list forkliftv1beta1.ForkliftControllerList
	if err := r.target.client.List(ctx, &list, client.InNamespace(r.in.ToolkitNamespace)); err != nil {
		return r.readFailure(r.target, "list ForkliftControllers in namespace "+r.in.ToolkitNamespace, err)
	}
	return evalToolkit(r, list.Items)
}

func evalToolkit(r *runner, controllers []forkliftv1beta1.ForkliftController) Check {
	c, ns := r.target, r.in.ToolkitNamespace
	if len(controllers) == 0 {
		return failed(
			fmt.Sprintf("no ForkliftController in namespace %s on %s: the migration toolkit is not set up there", ns, c.name),
			fmt.Sprintf("create one with live migration on: `%s apply -f -` with apiVersion: forklift.konveyor.io/v1beta1, kind: ForkliftController, metadata: {name: forklift-controller, namespace: %s}, spec: {feature_ocp_live_migration: \"true\"}", c.kubectl(), ns))
	}
	var states []string
	for i := range controllers {
		if controllers[i].LiveMigrationEnabled() {
			return passed("ForkliftController %s/%s on %s has feature_ocp_live_migration \"true\"", ns, controllers[i].Name, c.name)
		}
		states = append(states, fmt.Sprintf("%s has %q", controllers[i].Name, controllers[i].Spec.FeatureOCPLiveMigration))
	}
	first := controllers[0].Name
	return failed(
		fmt.Sprintf("no ForkliftController in namespace %s on %s enables OCP live migration (spec.feature_ocp_live_migration: %s; it must be \"true\")", ns, c.name, strings.Join(states, ", ")),
		fmt.Sprintf("`%s patch forkliftcontroller %s -n %s --type=merge -p '{\"spec\":{\"feature_ocp_live_migration\":\"true\"}}'`", c.kubectl(), first, ns))
}

// readKubeVirt is the side's KubeVirt CR, or the check saying why there
// is none: FeatureGate, which reads it first, fails with the reason, and
// the other checks that need it are then skipped naming FeatureGate.
func (r *runner) readKubeVirt(ctx context.Context, side Side, forID string) (*kubevirtv1.KubeVirt, *Check) {
	c := r.side(side)
	kv, err := c.getKubeVirt(ctx, r.in.VirtNamespace)
	if err != nil && forID != FeatureGate && r.failedBefore(FeatureGate, side) {
		s := Check{Side: side, Status: Skipped, Message: fmt.Sprintf("%s%s on the %s (%s)%s: its KubeVirt CR could not be read", skippedPrefix, FeatureGate, side, c.name, skippedSuffix)}
		return nil, &s
	}
	if errors.Is(err, errNoKubeVirt) {
		f := failed(fmt.Sprintf("no KubeVirt CR in namespace %s on %s", r.in.VirtNamespace, c.label()),
			fmt.Sprintf("install KubeVirt (OpenShift Virtualization) on %s with its CR in %s (in the lab: `cclm lab up`), or give the namespace that has it", c.name, r.in.VirtNamespace))
		return nil, &f
	}
	if err != nil {
		f := r.readFailure(c, "list KubeVirt CRs in namespace "+r.in.VirtNamespace, err)
		return nil, &f
	}
	return kv, nil
}

// FeatureGate: the side's KubeVirt CR enables DecentralizedLiveMigration.
func checkFeatureGate(ctx context.Context, r *runner, side Side) Check {
	kv, failure := r.readKubeVirt(ctx, side, FeatureGate)
	if failure != nil {
		return *failure
	}
	return evalFeatureGate(r.side(side), kv)
}

func evalFeatureGate(c *cluster, kv *kubevirtv1.KubeVirt) Check {
	gate := kubevirtv1.DecentralizedLiveMigrationGate
	if kv.IsFeatureGateEnabled(gate) {
		return passed("KubeVirt %s/%s on %s enables feature gate %s", kv.Namespace, kv.Name, c.name, gate)
	}
	var gates []string
	if dc := kv.Spec.Configuration.DeveloperConfiguration; dc != nil {
		gates = slices.Clone(dc.FeatureGates)
	}
	quoted := make([]string, 0, len(gates)+1)
	for _, g := range append(gates, gate) {
		quoted = append(quoted, strconv.Quote(g))
	}
	return failed(
		fmt.Sprintf("KubeVirt %s/%s on %s does not enable feature gate %s (spec.configuration.developerConfiguration.featureGates: [%s]): admission refuses receiving VMs and sendTo/receive migrations without it",
			kv.Namespace, kv.Name, c.name, gate, strings.Join(gates, ", ")),
		fmt.Sprintf("`%s patch kubevirt %s -n %s --type=merge -p '{\"spec\":{\"configuration\":{\"developerConfiguration\":{\"featureGates\":[%s]}}}}'` (on OpenShift: HyperConverged spec.featureGates.decentralizedLiveMigration: true)",
			c.kubectl(), kv.Name, kv.Namespace, strings.Join(quoted, ",")))
}

// Versions: both clusters' Kubernetes versions, within one minor of each
// other.
func checkVersions(ctx context.Context, r *runner) Check {
	src, err := r.source.serverVersion(ctx)
	if err != nil {
		return r.readFailure(r.source, "read the server version", err)
	}
	tgt, err := r.target.serverVersion(ctx)
	if err != nil {
		return r.readFailure(r.target, "read the server version", err)
	}
	return evalVersions(r, src, tgt)
}

// maxMinorSkew is how far apart the clusters' Kubernetes minors may be.
const maxMinorSkew = 1

func evalVersions(r *runner, src, tgt *version.Info) Check {
	sMajor, sMinor, sOK := majorMinor(src)
	tMajor, tMinor, tOK := majorMinor(tgt)
	describe := func(name string, info *version.Info, major, minor int, ok bool) string {
		if !ok {
			return fmt.Sprintf("%s runs Kubernetes %q (unparsable)", name, info.GitVersion)
		}
		return fmt.Sprintf("%s runs Kubernetes %d.%d (%s)", name, major, minor, info.GitVersion)
	}
	both := describe(r.source.name, src, sMajor, sMinor, sOK) + ", " + describe(r.target.name, tgt, tMajor, tMinor, tOK)
	const kubeVirtNote = "; the KubeVirt CRs publish no version to compare (cclm's KubeVirt is the same build on both)"
	if !sOK || !tOK {
		return passed("%s: not compared%s", both, kubeVirtNote)
	}
	skew := sMinor - tMinor
	if skew < 0 {
		skew = -skew
	}
	if sMajor != tMajor || skew > maxMinorSkew {
		older := r.source.name
		if tMajor < sMajor || tMajor == sMajor && tMinor < sMinor {
			older = r.target.name
		}
		return failed(
			fmt.Sprintf("%s: more than %d minor version apart, which cross-cluster live migration is not tested across", both, maxMinorSkew),
			fmt.Sprintf("upgrade %s to within %d minor version of the other cluster", older, maxMinorSkew))
	}
	return passed("%s: compatible (within %d minor version)%s", both, maxMinorSkew, kubeVirtNote)
}

// majorMinor reads major and minor ("1", "30+"), else the git version.
func majorMinor(info *version.Info) (major, minor int, ok bool) {
	if info == nil {
		return 0, 0, false
	}
	major, errMajor := strconv.Atoi(strings.TrimRight(info.Major, "+"))
	minor, errMinor := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	if errMajor == nil && errMinor == nil && major >= 0 && minor >= 0 {
		return major, minor, true
	}
	v, err := utilversion.ParseGeneric(info.GitVersion)
	if err != nil || v.Major() > math.MaxInt32 || v.Minor() > math.MaxInt32 {
		return 0, 0, false
	}
	return int(v.Major()), int(v.Minor()), true
}

// SyncAddress: the side's sync controller publishes its address in the
// KubeVirt CR's status.
func checkSyncAddress(ctx context.Context, r *runner, side Side) Check {
	kv, failure := r.readKubeVirt(ctx, side, SyncAddress)
	if failure != nil {
		return *failure
	}
	return evalSyncAddress(r.side(side), kv)
}

func evalSyncAddress(c *cluster, kv *kubevirtv1.KubeVirt) Check {
	if addresses := kv.Status.SynchronizationAddresses; len(addresses) > 0 {
		return passed("%s's synchronization controller publishes %s (KubeVirt %s/%s status.synchronizationAddresses)", c.name, strings.Join(addresses, ", "), kv.Namespace, kv.Name)
	}
	return failed(
		fmt.Sprintf("KubeVirt %s/%s on %s publishes no status.synchronizationAddresses: its synchronization controller is not running, not leading, or has no migration address", kv.Namespace, kv.Name, c.name),
		fmt.Sprintf("start %s's virt-synchronization-controller (`cclm sync`; in the lab `cclm lab status` lists it) and read its log: once it leads it publishes migration0's address and port %d there", c.name, kv.EffectiveSynchronizationPort()))
}

// MigrationRangesDisjoint: the two clusters' migration NADs can never
// hand out the same address (they share one L2 segment).
func checkRangesDisjoint(ctx context.Context, r *runner) Check {
	if r.in.SameCluster {
		return passed("source and target are one cluster, %s: both halves of each migration use its one migration network", r.target.name)
	}
	var configs [2]*ipam.Config
	var refs [2]string
	for i, side := range []Side{Source, Target} {
		c := r.side(side)
		kv, failure := r.readKubeVirt(ctx, side, MigrationRangesDisjoint)
		if failure != nil {
			return *failure
		}
		ref := ""
		if m := kv.Spec.Configuration.MigrationConfiguration; m != nil {
			ref = m.Network
		}
		if ref == "" {
			return passed("%s names no migration network (KubeVirt %s/%s spec.configuration.migrations.network is empty): its migrations use the pod network, so there are no ranges to overlap", c.name, kv.Namespace, kv.Name)
		}
		key := nadKey(ref, r.in.VirtNamespace)
		var nad cniv1.NetworkAttachmentDefinition
		if err := c.client.Get(ctx, key, &nad); err != nil {
			if apierrors.IsNotFound(err) {
				return failed(fmt.Sprintf("KubeVirt %s/%s on %s names migration network %q, but there is no NetworkAttachmentDefinition %s", kv.Namespace, kv.Name, c.name, ref, key),
					fmt.Sprintf("create NAD %s on %s (the OpenShift guide's %s.net-attach-def.yaml in examples/openshift) or fix spec.configuration.migrations.network", key, c.name, c.name))
			}
			return r.readFailure(c, "get NetworkAttachmentDefinition "+key.String(), err)
		}
		config, err := ipam.ParseNADConfig([]byte(nad.Spec.Config))
		if err != nil {
			return failed(fmt.Sprintf("%s's migration NAD %s: spec.config: %v", c.name, key, err), fmt.Sprintf("fix spec.config of NAD %s on %s", key, c.name))
		}
		configs[i], refs[i] = &config, key.String()
	}
	return evalRanges(r, refs, *configs[0], *configs[1])
}

func evalRanges(r *runner, refs [2]string, src, tgt ipam.Config) Check {
	both := fmt.Sprintf("%s's migration NAD %s (%s) and %s's %s (%s)", r.source.name, refs[0], describeIPAM(src.IPAM), r.target.name, refs[1], describeIPAM(tgt.IPAM))
	if err := ipam.Disjoint(src, tgt); err != nil {
		return failed(
			fmt.Sprintf("%s overlap: both can hand out %s, so a node of each cluster could get the same migration address on the shared segment", both, ipam.SharedAddresses(src, tgt)),
			ipam.DisjointAdvice(src, tgt)+fmt.Sprintf(" (the OpenShift guide's ocp7 and ocp1 NADs split 192.168.201.0/24 so); each cluster's KubeVirt spec.configuration.migrations.network names its NAD in %s", r.in.VirtNamespace))
	}
	return passed("%s hand out no address in common", both)
}

// describeIPAM says what a NAD hands out, for messages.
func describeIPAM(a ipam.IPAM) string {
	switch a.Type {
	case ipam.TypeWhereabouts:
		s := "whereabouts " + a.Range.String()
		if a.First.IsValid() && a.Last.IsValid() {
			s += " " + a.First.String() + "-" + a.Last.String()
		}
		if len(a.Exclude) > 0 {
			var ex []string
			for _, e := range a.Exclude {
				ex = append(ex, e.String())
			}
			s += " excluding " + strings.Join(ex, ", ")
		}
		return s
	case "":
		return "no ipam"
	default:
		return a.Type
	}
}

// nadKey reads a network reference: "namespace/name", or a name in
// defaultNamespace (KubeVirt's form, as internal/migrationnet reads it).
func nadKey(ref, defaultNamespace string) client.ObjectKey {
	if namespace, name, found := strings.Cut(ref, "/"); found {
		return client.ObjectKey{Namespace: namespace, Name: name}
	}
	return client.ObjectKey{Namespace: defaultNamespace, Name: ref}
}
