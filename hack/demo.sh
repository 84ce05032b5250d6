#!/usr/bin/env bash
# The lab demo: the seed's clusters ocp7 and ocp1 on this machine, a VM on
# ocp7 with a written data disk, and a live migration to ocp7's other node
# that the guest does not notice. (The cross-cluster move to ocp1 comes with
# the sync-controller wiring and the toolkit: see the open issues.) The lab
# is stopped at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CCLM_LAB_DIR:-.cclm-lab}
cclm="bin/cclm"
export KUBECONFIG="$PWD/$dir/kubeconfig"
kubectl="bin/kubectl"
guest() { $cclm guest demo-vm --context ocp7 -n default "$@"; }
field() { sed -n "s/^$1: //p"; }

trap '$cclm lab down --dir "$dir"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "start the lab: clusters ocp7 (source) and ocp1 (target), 2 nodes each"
$cclm lab up --dir "$dir"
$cclm lab status --dir "$dir"
for context in ocp7 ocp1; do
	$kubectl --context "$context" get nodes -o custom-columns='NODE:.metadata.name,MIGRATION0:.metadata.annotations.cclm\.io/migration-address'
done

step "ocp7: run examples/vm.yaml (128 MiB, the cclm guest, a 256 MiB data disk)"
$kubectl --context ocp7 apply -f examples/vm.yaml
for _ in $(seq 1 120); do guest info >/dev/null 2>&1 && break; sleep 1; done
$kubectl --context ocp7 get vm,vmi,dv,pvc -n default

step "write 64 MiB of checksummed blocks to the data disk from inside the guest"
written=$(guest disk-write --size-mib 64 | field digest)
before=$(guest info | field bootID)
source_node=$($kubectl --context ocp7 get vmi demo-vm -n default -o jsonpath='{.status.nodeName}')
echo "boot ID before: $before on $source_node; disk digest $written"

step "live-migrate demo-vm to ocp7's other node (memory and disk, over migration0, TLS)"
$kubectl --context ocp7 create -f - <<YAML
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata: {name: demo-move, namespace: default}
spec: {vmiName: demo-vm}
YAML
$kubectl --context ocp7 wait vmim/demo-move -n default --for=jsonpath='{.status.phase}'=Succeeded --timeout=180s
$kubectl --context ocp7 get vmim demo-move -n default \
	-o custom-columns='PHASE:.status.phase,FROM:.status.migrationState.sourceNode,TO:.status.migrationState.targetNode,DOWNTIME_MS:.status.migrationState.progress.downtimeMs,SENT_BYTES:.status.migrationState.progress.transferredBytes'

step "proof: same boot, disk intact on the new node"
after=$(guest info | field bootID)
target_node=$($kubectl --context ocp7 get vmi demo-vm -n default -o jsonpath='{.status.nodeName}')
verified=$(guest disk-verify --size-mib 64)
echo "boot ID after:  $after on $target_node"
[ "$before" = "$after" ] || { echo "FAIL: the guest rebooted" >&2; exit 1; }
[ "$source_node" != "$target_node" ] || { echo "FAIL: the VM did not move" >&2; exit 1; }
echo "$verified" | grep -q '^ok: true' || { echo "FAIL: disk verify: $verified" >&2; exit 1; }
[ "$(echo "$verified" | field digest)" = "$written" ] || { echo "FAIL: disk digest changed" >&2; exit 1; }
echo "OK: the guest kept running (boot ID $after) and its disk moved intact ($written)"

step "stop the lab"
