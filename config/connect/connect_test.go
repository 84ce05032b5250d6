package connect

import "testing"

// The ClusterRole decodes into rules that each name what they allow: a
// token made by `cclm connect` can do exactly what the OpenShift guide's
// reader's token can.
func TestClusterRoleHasTheGuidesRules(t *testing.T) {
	role, err := ClusterRole()
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("the ClusterRole has no rules")
	}
	for _, rule := range role.Rules {
		if len(rule.Verbs) == 0 || len(rule.Resources) == 0 {
			t.Fatalf("rule without verbs or resources: %+v", rule)
		}
	}
}
