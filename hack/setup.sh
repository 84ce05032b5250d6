#!/usr/bin/env bash
# Installs what cclm's lab and tests need on a Debian 12 machine, as root:
# idempotent, so `make test` and `make demo` can run it every time.
set -euo pipefail

packages=(
	qemu-system-x86   # the hypervisor (TCG here; KVM where it works)
	xz-utils          # the guest build unpacks the Debian kernel's modules
	iproute2          # ip netns, veth, bridge, macvlan for the lab's networks
	procps            # pgrep/ps in the tests' leak checks
	psmisc
)

missing=()
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
go version >/dev/null || { echo "setup: Go is missing; install Go 1.26 first" >&2; exit 1; }
echo "setup: prerequisites present"
