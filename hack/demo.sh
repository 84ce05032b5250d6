#!/usr/bin/env bash
# The lab demo: the OpenShift guide's clusters ocp7 and ocp1 on this machine, a VM on
# ocp7 with a written data disk, and a live migration of that running VM to
# ocp1 that the guest does not notice, with the user's three commands:
#
#   cclm connect   --source ocp7 --target ocp1            # token, Provider, CA exchange, preflight
#   cclm preflight --source ocp7 --target ocp1 -n default demo-vm
#   cclm migrate demo-vm --source ocp7 --target ocp1 -n default
#
# `bash hack/demo.sh --by-hand` moves the VM instead as upstream KubeVirt's
# user guide does it, with kubectl and no toolkit: trust exchanged between
# the clusters, a receiver VM and a receiving VMIM on ocp1, a sending VMIM
# on ocp7. Either way the proof is the same: the guest's boot ID before and
# after, its disk verified on ocp1, the ocp7 VM Halted. The lab is stopped
# at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-cclm}
case "$mode" in
cclm | --by-hand) ;;
*)
	echo "usage: $0 [--by-hand]" >&2
	exit 2
	;;
esac
dir=${CCLM_LAB_DIR:-.cclm-lab}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
cclm="bin/cclm"
export KUBECONFIG="$dir/kubeconfig"
kubectl="bin/kubectl"
guest() { local context=$1; shift; $cclm guest demo-vm --context "$context" -n default "$@"; }
field() { sed -n "s/^$1: //p"; }
jsonpath() { local context=$1 kind=$2 name=$3 path=$4; $kubectl --context "$context" get "$kind" "$name" -n default -o jsonpath="{$path}"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

trap '$cclm lab down --dir "$dir"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "start the lab: clusters ocp7 (source) and ocp1 (target, with the migration toolkit), 2 nodes and a sync controller each"
$cclm lab up --dir "$dir"
$cclm lab status --dir "$dir"
for context in ocp7 ocp1; do
	$kubectl --context "$context" get nodes -o custom-columns='NODE:.metadata.name,MIGRATION0:.metadata.annotations.cclm\.io/migration-address'
done

# why is a failed `cclm guest` call's reason, without its prefixes.
why() { local reason=${1#error: }; echo "${reason#guest info: }"; }

# wait_for_guest CONTEXT: until demo-vm's guest agent answers, saying every
# 10 s what it waits for; fails at once when the node agent finds the guest
# did not boot (the VMI's AgentConnected condition GuestNotBooted carries the
# console's last lines) or the VMI failed, and after 150 s in any case.
wait_for_guest() {
	local context=$1 began=$SECONDS said=$SECONDS answer reason
	while ! answer=$(guest "$context" info 2>&1); do
		reason=$(jsonpath "$context" vmi demo-vm '.status.conditions[?(@.type=="AgentConnected")].reason' 2>/dev/null || true)
		if [ "$reason" = GuestNotBooted ]; then
			fail "$(jsonpath "$context" vmi demo-vm '.status.conditions[?(@.type=="AgentConnected")].message')"
		fi
		if [ "$(jsonpath "$context" vmi demo-vm .status.phase 2>/dev/null || true)" = Failed ]; then
			fail "VMI demo-vm failed: $(jsonpath "$context" vmi demo-vm .status.reason)"
		fi
		if ((SECONDS - began >= 150)); then
			fail "demo-vm's guest agent did not answer within 150 s: $(why "$answer")"
		fi
		if ((SECONDS - said >= 10)); then
			echo "waiting for demo-vm's guest ($((SECONDS - began)) s): $(why "$answer")"
			said=$SECONDS
		fi
		sleep 1
	done
	echo "demo-vm's guest answers after $((SECONDS - began)) s"
}

step "ocp7: run examples/vm.yaml (128 MiB, the cclm guest, a 256 MiB data disk)"
$kubectl --context ocp7 apply -f examples/vm.yaml
wait_for_guest ocp7
$kubectl --context ocp7 get vm,vmi,dv,pvc -n default

step "write 64 MiB of checksummed blocks to the data disk from inside the guest"
written=$(guest ocp7 disk-write --size-mib 64 | field digest)
before=$(guest ocp7 info | field bootID)
echo "boot ID before: $before on $(jsonpath ocp7 vmi demo-vm .status.nodeName); disk digest $written"

migrate_with_cclm() {
	step "cclm connect --source ocp7 --target ocp1: the OpenShift guide's token, Provider and CA exchange in one command, then preflight"
	$cclm connect --source ocp7 --target ocp1
	$kubectl --context ocp1 get providers -n openshift-mtv

	step "cclm preflight --source ocp7 --target ocp1 -n default demo-vm: every check before anything is created"
	$cclm preflight --source ocp7 --target ocp1 -n default demo-vm

	step "cclm migrate demo-vm --source ocp7 --target ocp1 -n default: maps, Plan, Migration, live progress"
	$cclm migrate demo-vm --source ocp7 --target ocp1 -n default
	$kubectl --context ocp1 get networkmaps,storagemaps,plans,migrations -n openshift-mtv
}

migrate_by_hand() {
	step "trust: each cluster's CA into the other's ConfigMap kubevirt-external-ca"
	for pair in ocp7:ocp1 ocp1:ocp7; do
		from=${pair%%:*} to=${pair##*:}
		$kubectl --context "$from" get configmap kubevirt-ca -n openshift-cnv -o jsonpath='{.data.ca-bundle}' >"$dir/$from-ca.pem"
		$kubectl --context "$to" create configmap kubevirt-external-ca -n openshift-cnv \
			--from-file=ca-bundle="$dir/$from-ca.pem" --dry-run=client -o yaml | $kubectl --context "$to" apply -f -
	done

	step "ocp1: the receiver (examples/vm-receiver.yaml, runStrategy WaitAsReceiver) and a VMIM with receive"
	$kubectl --context ocp1 apply -f examples/vm-receiver.yaml
	$kubectl --context ocp1 wait vmi/demo-vm -n default --for=jsonpath='{.status.phase}'=WaitingForSync --timeout=60s
	$kubectl --context ocp1 create -f - <<YAML
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata: {name: demo-receive, namespace: default}
spec:
  vmiName: demo-vm
  receive: {migrationID: demo-move}
YAML
	$kubectl --context ocp1 wait vmim/demo-receive -n default --for=jsonpath='{.status.synchronizationAddresses[0]}' --timeout=60s
	connect=$(jsonpath ocp1 vmim demo-receive '.status.synchronizationAddresses[0]')
	echo "ocp1's synchronization controller for this migration: $connect"

	step "ocp7: a VMIM with sendTo, connectURL $connect: memory and disk go to ocp1 over migration0, mutual TLS"
	$kubectl --context ocp7 create -f - <<YAML
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata: {name: demo-send, namespace: default}
spec:
  vmiName: demo-vm
  sendTo: {migrationID: demo-move, connectURL: "$connect"}
YAML
	$kubectl --context ocp7 wait vmim/demo-send -n default --for=jsonpath='{.status.phase}'=Succeeded --timeout=180s
	$kubectl --context ocp1 wait vmim/demo-receive -n default --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s
	columns='PHASE:.status.phase,FROM:.status.migrationState.sourceNode,TO:.status.migrationState.targetNode,DOWNTIME_MS:.status.migrationState.progress.downtimeMs,SENT_BYTES:.status.migrationState.progress.transferredBytes'
	$kubectl --context ocp7 get vmim demo-send -n default -o custom-columns="$columns"
	$kubectl --context ocp1 get vmim demo-receive -n default -o custom-columns="$columns"
}

if [ "$mode" = --by-hand ]; then
	migrate_by_hand
else
	migrate_with_cclm
fi

step "proof: same boot and disk intact on ocp1; ocp7's VM Halted, nothing deleted"
after=$(guest ocp1 info | field bootID)
verified=$(guest ocp1 disk-verify --size-mib 64)
echo "boot ID after:  $after on $(jsonpath ocp1 vmi demo-vm .status.nodeName) (ocp1)"
[ "$before" = "$after" ] || fail "the guest rebooted"
echo "$verified" | grep -q '^ok: true' || fail "disk verify: $verified"
[ "$(echo "$verified" | field digest)" = "$written" ] || fail "disk digest changed"
$kubectl --context ocp7 wait vm/demo-vm -n default --for=jsonpath='{.spec.runStrategy}'=Halted --timeout=60s
$kubectl --context ocp1 wait vm/demo-vm -n default --for=jsonpath='{.spec.runStrategy}'=Always --timeout=60s
for context in ocp7 ocp1; do
	echo "-- $context"
	$kubectl --context "$context" get vm,vmi,pvc -n default
done
echo "OK: the guest left ocp7 for ocp1 without rebooting (boot ID $after) and its disk moved intact ($written)"

step "stop the lab"
