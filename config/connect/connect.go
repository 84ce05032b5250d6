// Package connect embeds what `cclm connect` installs on the source
// cluster that is not cclm's own: the seed's ClusterRole
// live-migration-role (the rules the migration toolkit's token gets),
// a verbatim copy of the seed's cclm/clusterrole.yaml.
package connect

import (
	_ "embed"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// ClusterRoleYAML is the seed's cclm/clusterrole.yaml, byte for byte.
//
//go:embed clusterrole.yaml
var ClusterRoleYAML []byte

// ClusterRoleName is the name of the seed's ClusterRole.
const ClusterRoleName = "live-migration-role"

// ClusterRole is the seed's ClusterRole live-migration-role, typed.
func ClusterRole() (*rbacv1.ClusterRole, error) {
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(ClusterRoleYAML, role); err != nil {
		return nil, fmt.Errorf("config/connect/clusterrole.yaml: %w", err)
	}
	if role.Kind != "ClusterRole" || role.APIVersion != rbacv1.SchemeGroupVersion.String() || role.Name != ClusterRoleName {
		return nil, fmt.Errorf("config/connect/clusterrole.yaml: want %s ClusterRole %s, got %s %s %s", rbacv1.SchemeGroupVersion, ClusterRoleName, role.APIVersion, role.Kind, role.Name)
	}
	return role, nil
}
