#!/usr/bin/env bash
# The lab demo: the seed's two clusters on this machine. Each step prints
# what it shows; the lab is stopped at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CCLM_LAB_DIR:-.cclm-lab}
cclm=bin/cclm
kubectl="bin/kubectl --kubeconfig $dir/kubeconfig"

trap '$cclm lab down --dir "$dir"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "start the lab: clusters ocp7 (source) and ocp1 (target)"
$cclm lab up --dir "$dir"
$cclm lab status --dir "$dir"

for context in ocp7 ocp1; do
	step "$context: the KubeVirt CR with the DecentralizedLiveMigration gate"
	$kubectl --context "$context" get kubevirts -n openshift-cnv \
		-o custom-columns=NAME:.metadata.name,GATES:.spec.configuration.developerConfiguration.featureGates
done

step "ocp7: the seed's ClusterRole and migration network apply unchanged"
seed=${CCLM_SEED_DIR:-../shared/seed/cclm}
$kubectl --context ocp7 apply -f "$seed/clusterrole.yaml" -f "$seed/ocp7.net-attach-def.yaml"
$kubectl --context ocp1 apply -f "$seed/ocp1.net-attach-def.yaml"

step "stop the lab"
