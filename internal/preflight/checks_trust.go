package preflight

import (
	"context"
	"fmt"
	"strings"

	"github.com/cclm-io/cclm/internal/trust"
)

// clusterTrust is one side's migration CA (kubevirt-ca) and the CAs it
// trusts besides (kubevirt-external-ca; "" when absent).
type clusterTrust struct {
	ca, external string
}

// ClusterTrust: each cluster trusts the other's migration CA, with which
// their synchronization controllers and node agents authenticate each
// other. A CA not imported yet is no failure: the Migration's
// SynchronizeCertificates step imports it (with the token permissions
// TokenPermissions checks), and the check says so. A cluster without a
// migration CA, or with bundles that are not PEM certificates, fails.
func checkClusterTrust(ctx context.Context, r *runner) Check {
	var read [2]clusterTrust
	for i, side := range []Side{Source, Target} {
		bundles, failure := r.readTrust(ctx, side)
		if failure != nil {
			return *failure
		}
		read[i] = bundles
	}
	return evalTrust(r, read[0], read[1])
}

func (r *runner) readTrust(ctx context.Context, side Side) (clusterTrust, *Check) {
	c := r.side(side)
	bundles, err := trust.ReadBundles(ctx, c.client, r.in.VirtNamespace)
	if err != nil {
		failure := r.readFailure(c, "get ConfigMaps "+trust.CABundleConfigMap+" and "+trust.ExternalCAConfigMap+" in "+r.in.VirtNamespace, err)
		return clusterTrust{}, &failure
	}
	if !bundles.HasCA {
		failure := failed(fmt.Sprintf("%s has no migration CA: no ConfigMap %s/%s (key %s)", c.name, r.in.VirtNamespace, trust.CABundleConfigMap, trust.BundleKey),
			fmt.Sprintf("install KubeVirt on %s in namespace %s (`cclm install` makes the CA and the ConfigMap)", c.name, r.in.VirtNamespace))
		failure.Side = side
		return clusterTrust{}, &failure
	}
	return clusterTrust{ca: bundles.CA, external: bundles.External}, nil
}

func evalTrust(r *runner, source, target clusterTrust) Check {
	var lacking []string
	for _, d := range []struct {
		to, from         clusterTrust
		toName, fromName string
	}{{target, source, r.target.name, r.source.name}, {source, target, r.source.name, r.target.name}} {
		missing, err := trust.Missing(d.to.ca, d.to.external, d.from.ca)
		if err != nil {
			return failed(fmt.Sprintf("%s's CA bundles (ConfigMaps %s and %s in %s) are not all PEM certificates: %v", d.toName, trust.CABundleConfigMap, trust.ExternalCAConfigMap, r.in.VirtNamespace, err),
				fmt.Sprintf("repair ConfigMap %s/%s on %s so that key %s holds only PEM certificates (or delete it: the Migration makes it again)", r.in.VirtNamespace, trust.ExternalCAConfigMap, d.toName, trust.BundleKey))
		}
		if missing > 0 {
			lacking = append(lacking, fmt.Sprintf("%s does not trust %s's migration CA yet (%d certificate(s) of %s's %s missing from its %s)",
				d.toName, d.fromName, missing, d.fromName, trust.CABundleConfigMap, trust.ExternalCAConfigMap))
		}
	}
	if len(lacking) == 0 {
		return passed("%s and %s trust each other's migration CA (each one's %s is in the other's %s)", r.source.name, r.target.name, trust.CABundleConfigMap, trust.ExternalCAConfigMap)
	}
	return passed("%s: the Migration's SynchronizeCertificates step imports it, with the permissions TokenPermissions checks (`cclm connect` does it at once)", strings.Join(lacking, "; "))
}
