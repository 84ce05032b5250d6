// Package connect holds what `cclm connect` installs on the source cluster
// that is not cclm's own: the OpenShift guide's ClusterRole
// live-migration-role (the rules the migration toolkit's token gets), read
// from examples/openshift/clusterrole.yaml as the guide publishes it.
package connect

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/cclm-io/cclm/examples/openshift"
)

// ClusterRoleName is the name of the OpenShift guide's ClusterRole.
const ClusterRoleName = "live-migration-role"

// clusterRoleFile names the file in errors, from the repository's root.
const clusterRoleFile = "examples/openshift/" + openshift.ClusterRoleFile

// ClusterRole is the OpenShift guide's ClusterRole live-migration-role,
// typed.
func ClusterRole() (*rbacv1.ClusterRole, error) {
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(openshift.ClusterRoleYAML(), role); err != nil {
		return nil, fmt.Errorf("%s: %w", clusterRoleFile, err)
	}
	if role.Kind != "ClusterRole" || role.APIVersion != rbacv1.SchemeGroupVersion.String() || role.Name != ClusterRoleName {
		return nil, fmt.Errorf("%s: want %s ClusterRole %s, got %s %s %s", clusterRoleFile, rbacv1.SchemeGroupVersion, ClusterRoleName, role.APIVersion, role.Kind, role.Name)
	}
	return role, nil
}
