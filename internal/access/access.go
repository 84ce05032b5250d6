// Package access declares what a cclm component may do in its cluster: its
// ServiceAccount and least-privilege RBAC rules. Components declare their
// Account here, a leaf, and the installer (internal/install) applies it,
// so that no component links the installer.
package access

import rbacv1 "k8s.io/api/rbac/v1"

// Account is one of cclm's in-cluster components: its ServiceAccount in
// the virt namespace and the least-privilege rules it runs with. The names
// follow KubeVirt's (kubevirt-handler is virt-handler's account).
type Account struct {
	ServiceAccount string
	Rules          []rbacv1.PolicyRule
	// NamespacedRoles are existing Roles to bind in their namespace, e.g.
	// kube-system's extension-apiserver-authentication-reader.
	NamespacedRoles []NamespacedRole
}

// NamespacedRole names a Role in a namespace.
type NamespacedRole struct{ Namespace, Role string }
