#!/usr/bin/env bash
# Installs what cclm's lab and tests need on a Debian machine, as root:
# idempotent, so `make test` and `make demo` can run it every time.
#
# QEMU must be 9.0 or newer (older releases lose a TCG guest's writes
# during migration). Debian 12 ships 7.2, so there the QEMU packages, and
# only they, come from bookworm-backports, enabled in a sources file of
# cclm's own; everything else stays on the machine's suites.
set -euo pipefail

packages=(
	xz-utils          # the guest build unpacks the Debian kernel's modules
	iproute2          # ip netns, veth, bridge, macvlan for the lab's networks
	procps            # pgrep/ps in the tests' leak checks
	psmisc
	chromium          # the dashboard's browser test drives it headless
	genisoimage       # node agents make Secret, ConfigMap and sysprep disks (ISO 9660), as virt-launcher does
)
# The hypervisor (TCG here; KVM where a guest boots under it) and its tools.
qemu_packages=(qemu-system-x86 qemu-utils)
readonly MIN_QEMU=1:9.0
readonly BACKPORTS_SOURCES=/etc/apt/sources.list.d/cclm-bookworm-backports.sources

export DEBIAN_FRONTEND=noninteractive
apt_updated=false
apt_update() {
	$apt_updated && return
	apt-get update -qq
	apt_updated=true
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# qemu_current: every QEMU package is installed at MIN_QEMU or newer.
qemu_current() {
	local pkg version
	for pkg in "${qemu_packages[@]}"; do
		installed "$pkg" || return 1
		version=$(dpkg-query -W -f='${Version}' "$pkg")
		dpkg --compare-versions "$version" ge "$MIN_QEMU" || return 1
	done
}

# candidate PKG: the version apt would install from the enabled suites.
candidate() { apt-cache policy "$1" | sed -n 's/^ *Candidate: //p'; }

install_qemu() {
	qemu_current && return
	apt_update
	if dpkg --compare-versions "$(candidate qemu-system-x86)" ge "$MIN_QEMU"; then
		echo "setup: installing ${qemu_packages[*]}"
		apt-get install -y -qq --no-install-recommends "${qemu_packages[@]}"
		return
	fi
	# shellcheck source=/dev/null
	. /etc/os-release
	[[ ${VERSION_CODENAME:-} == bookworm ]] || {
		echo "setup: this machine's suites offer QEMU $(candidate qemu-system-x86); cclm needs $MIN_QEMU or newer: install it, then run make setup again" >&2
		exit 1
	}
	if [[ ! -f $BACKPORTS_SOURCES ]]; then
		echo "setup: enabling bookworm-backports in $BACKPORTS_SOURCES (for QEMU only)"
		cat >"$BACKPORTS_SOURCES" <<-EOF
			Types: deb
			URIs: http://deb.debian.org/debian
			Suites: bookworm-backports
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		apt_updated=false
		apt_update
	fi
	echo "setup: installing ${qemu_packages[*]} from bookworm-backports"
	# -t: the QEMU packages and the versions of their dependencies they
	# require (qemu-system-common, qemu-system-data, seabios) come from
	# backports; naming only the packages (pkg/suite) leaves those
	# dependencies on bookworm's older versions, which apt refuses.
	# Backports stay pinned below the release (priority 100) otherwise, so
	# nothing else moves to that suite, now or on a later upgrade.
	apt-get install -y -qq --no-install-recommends -t bookworm-backports "${qemu_packages[@]}"
}

missing=()
for pkg in "${packages[@]}"; do
	installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	apt_update
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
install_qemu
go version >/dev/null || { echo "setup: Go is missing; install Go 1.26 first" >&2; exit 1; }
echo "setup: prerequisites present ($(qemu-system-x86_64 --version | head -1))"
