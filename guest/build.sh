#!/usr/bin/env bash
# guest/build.sh OUTDIR: build the cclm guest image (`make guest` runs it
# with OUTDIR=bin/guest). Produces
#   OUTDIR/vmlinuz         Debian's linux-image-amd64 kernel, as shipped
#   OUTDIR/vmlinux         the same kernel uncompressed (ELF, PVH entry point):
#                          `-kernel vmlinux` boots ~3.5 s sooner under TCG,
#                          which is slow at the xz decompression vmlinuz does
#   OUTDIR/initramfs.img   gzip'ed cpio (newc): busybox-static, the virtio
#                          modules, guest/rootfs (/init, inittab, ...) and the
#                          static Go guest agent (guest/agent)
# Kernel and busybox come from Debian packages fetched with `apt-get download`
# and unpacked with `dpkg-deb -x` under OUTDIR/cache: nothing is installed on
# the host. Needs apt-get, apt-cache, dpkg-deb, gzip, sha256sum, flock (all
# in every Debian install), go, and xz (apt package xz-utils, installed here
# when missing and running as root). It runs `apt-get update` itself (as
# root) when the package lists are missing.
#
# Idempotent: when OUTDIR/.stamp matches the inputs (package versions, the
# sources under guest/ and pkg/guestagent, the Go version), it does nothing.
# CCLM_GUEST_KERNEL_PKG=linux-image-6.1.0-NN-amd64 pins the kernel package.
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) fails the build too

readonly KERNEL_META_PKG=linux-image-amd64
readonly BUSYBOX_PKG=busybox-static
# The modules the guest needs, in the order they are asked for; their
# dependencies (from modules.dep) are added before each one.
readonly GUEST_MODULES=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	virtio_blk failover net_failover virtio_net virtio_console
)
# Fixed timestamp for every file in the archive: same inputs, same image.
readonly ARCHIVE_MTIME=@1700000000

die() { echo "guest/build.sh: $*" >&2; exit 1; }
note() { echo "guest/build.sh: $*" >&2; }

main() {
	[[ $# -eq 1 ]] || die "usage: guest/build.sh OUTDIR (e.g. bin/guest)"
	GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	REPO_DIR=$(dirname "$GUEST_DIR")
	mkdir -p "$1"
	OUT_DIR=$(cd "$1" && pwd)
	CACHE_DIR=$OUT_DIR/cache
	WORK_DIR=$CACHE_DIR/work
	mkdir -p "$CACHE_DIR/debs"

	check_host_tools
	ensure_xz
	# Two builds at once (parallel test packages) would trample the cache.
	exec 9>"$OUT_DIR/.lock"
	flock 9

	ensure_package_lists
	resolve_packages
	local stamp
	stamp=$(input_stamp)
	if [[ -f $OUT_DIR/vmlinuz && -f $OUT_DIR/vmlinux && -f $OUT_DIR/initramfs.img && $(cat "$OUT_DIR/.stamp" 2>/dev/null) == "$stamp" ]]; then
		note "up to date: $OUT_DIR (kernel $KERNEL_VERSION)"
		return
	fi
	build_image
	echo "$stamp" >"$OUT_DIR/.stamp"
	report
}

check_host_tools() {
	local missing=() tool
	for tool in apt-get apt-cache dpkg-deb gzip sha256sum flock find sort go; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[[ ${#missing[@]} -eq 0 ]] || die "missing host tools: ${missing[*]}
  needed: apt + dpkg (Debian base system), gzip, coreutils, findutils, util-linux (flock), Go toolchain"
}

# ensure_xz: Debian's kernel is xz-compressed with the x86 BCJ filter,
# which busybox's unxz lacks.
ensure_xz() {
	command -v xz >/dev/null && return
	[[ $(id -u) -eq 0 ]] || die "xz is missing: apt-get install xz-utils"
	note "installing xz-utils (to unpack the kernel into vmlinux)"
	apt-get install -y -qq xz-utils >&2 || { apt-get update -qq >&2 && apt-get install -y -qq xz-utils >&2; }
}

# ensure_package_lists refreshes apt's lists when they are missing or more
# than a day old: the archive drops superseded kernels, so a stale list
# names .debs that can no longer be downloaded.
ensure_package_lists() {
	local have_lists=false
	apt-cache show "$KERNEL_META_PKG" "$BUSYBOX_PKG" >/dev/null 2>&1 && have_lists=true
	if $have_lists && [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit) ]]; then
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		$have_lists || die "apt package lists are missing; run 'apt-get update' as root first"
		note "apt package lists are more than a day old; using them (run 'apt-get update' if downloads fail)"
		return
	fi
	note "refreshing apt package lists (apt-get update)"
	apt-get update -qq >&2
}

candidate_version() {
	apt-cache policy "$1" | awk '/Candidate:/ {print $2}'
}

# resolve_packages sets KERNEL_PKG (the real package behind the
# linux-image-amd64 meta-package), KERNEL_PKG_VERSION, BUSYBOX_VERSION.
resolve_packages() {
	KERNEL_PKG=${CCLM_GUEST_KERNEL_PKG:-$(apt-cache depends "$KERNEL_META_PKG" |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')}
	[[ -n $KERNEL_PKG ]] || die "cannot resolve $KERNEL_META_PKG to a linux-image-<version>-amd64 package"
	KERNEL_PKG_VERSION=$(candidate_version "$KERNEL_PKG")
	BUSYBOX_VERSION=$(candidate_version "$BUSYBOX_PKG")
	[[ -n $KERNEL_PKG_VERSION && $KERNEL_PKG_VERSION != "(none)" ]] || die "no installable version of $KERNEL_PKG"
	[[ -n $BUSYBOX_VERSION && $BUSYBOX_VERSION != "(none)" ]] || die "no installable version of $BUSYBOX_PKG"
	KERNEL_VERSION=${KERNEL_PKG#linux-image-} # e.g. 6.1.0-56-amd64, the modules directory
}

# input_stamp hashes everything the image is made from.
input_stamp() {
	{
		echo "$KERNEL_PKG=$KERNEL_PKG_VERSION $BUSYBOX_PKG=$BUSYBOX_VERSION"
		go version
		(cd "$REPO_DIR" && source_files | xargs sha256sum)
	} | sha256sum | cut -c1-32
}

# source_files lists, relative to the repository, the files the image is
# built from (tests and docs excluded: they do not change it).
source_files() {
	{ echo guest/build.sh; find guest/rootfs -type f; agent_sources; } | LC_ALL=C sort
}

agent_sources() {
	find guest/agent pkg/guestagent -maxdepth 1 -name '*.go' ! -name '*_test.go'
}

build_image() {
	local kernel_root busybox_root stage
	rm -rf "$WORK_DIR"
	kernel_root=$(fetch_kernel)
	busybox_root=$(unpack_package "$BUSYBOX_PKG" "$BUSYBOX_VERSION")
	stage=$CACHE_DIR/stage
	rm -rf "$stage"
	mkdir -p "$stage"
	stage_rootfs "$stage" "$busybox_root/bin/busybox"
	stage_modules "$stage" "$kernel_root" "$busybox_root/bin/busybox"
	build_agent "$stage/sbin/cclm-agent"
	write_archive "$stage" "$busybox_root/bin/busybox" "$OUT_DIR/initramfs.img"
	cp "$kernel_root/boot/vmlinuz-$KERNEL_VERSION" "$OUT_DIR/vmlinuz.tmp"
	mv "$OUT_DIR/vmlinuz.tmp" "$OUT_DIR/vmlinuz"
	grep -q '^CONFIG_PVH=y' "$kernel_root/boot/config-$KERNEL_VERSION" ||
		die "$KERNEL_PKG has no CONFIG_PVH: QEMU could not boot its vmlinux"
	extract_vmlinux "$OUT_DIR/vmlinuz" >"$OUT_DIR/vmlinux.tmp"
	mv "$OUT_DIR/vmlinux.tmp" "$OUT_DIR/vmlinux"
	rm -rf "$WORK_DIR"
}

# extract_vmlinux BZIMAGE: print the kernel ELF inside a bzImage. Boot
# protocol >= 2.08 records where the compressed payload sits: at
# payload_offset (u32 at 0x248) from the protected-mode code, which starts
# after (setup_sects (byte at 0x1f1) + 1) * 512 bytes; payload_length is
# the u32 at 0x24c. The payload ends with 4 bytes of size, hence
# --single-stream (stop after the xz stream).
extract_vmlinux() {
	local bzimage=$1 setup_sects payload_offset payload_length start magic
	setup_sects=$(header_uint "$bzimage" 0x1f1 1)
	payload_offset=$(header_uint "$bzimage" 0x248 4)
	payload_length=$(header_uint "$bzimage" 0x24c 4)
	start=$(((setup_sects + 1) * 512 + payload_offset))
	magic=$(od -An -tx1 -j "$start" -N 6 "$bzimage" | tr -d ' \n')
	[[ $magic == fd377a585a00 ]] || die "$bzimage: payload is not xz (magic $magic); extract_vmlinux handles xz only"
	dd if="$bzimage" iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" bs=1M status=none |
		xz -dc --single-stream
}

# header_uint FILE OFFSET SIZE: little-endian unsigned integer.
header_uint() {
	od -An -tu"$3" --endian=little -j "$(($2))" -N "$3" "$1" | tr -d ' '
}

# unpack_package PKG VERSION: unpack the package's .deb into the build's
# work directory (removed after the build: the kernel package unpacks to
# 400 MB, of which the image needs a few); prints the directory.
unpack_package() {
	local pkg=$1 version=$2 dir deb
	dir=$WORK_DIR/$pkg
	deb=$(fetch_deb "$pkg" "$version")
	rm -rf "$dir"
	mkdir -p "$dir"
	dpkg-deb -x "$deb" "$dir"
	echo "$dir"
}

cached_deb() {
	find "$CACHE_DIR/debs" -name "${1}_*.deb" | grep -F "_${2//:/%3a}_" | head -1 || true
}

# fetch_deb PKG VERSION: download the .deb once, dropping other versions of
# it from the cache; prints its path.
fetch_deb() {
	local pkg=$1 version=$2 file
	file=$(cached_deb "$pkg" "$version")
	if [[ -z $file ]]; then
		note "downloading $pkg $version"
		find "$CACHE_DIR/debs" -name "${pkg}_*.deb" -delete
		(cd "$CACHE_DIR/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2) ||
			die "apt-get download $pkg=$version failed (stale package lists? run apt-get update)"
		file=$(cached_deb "$pkg" "$version")
		[[ -n $file ]] || die "downloaded $pkg $version but cannot find its .deb in $CACHE_DIR/debs"
	fi
	echo "$file"
}

# fetch_kernel: the signed package normally carries vmlinuz and the modules;
# if a release moves them to the -unsigned package, take that one instead.
fetch_kernel() {
	local dir
	dir=$(unpack_package "$KERNEL_PKG" "$KERNEL_PKG_VERSION")
	if [[ ! -f $dir/boot/vmlinuz-$KERNEL_VERSION ]]; then
		note "$KERNEL_PKG has no vmlinuz; using $KERNEL_PKG-unsigned"
		dir=$(unpack_package "$KERNEL_PKG-unsigned" "$(candidate_version "$KERNEL_PKG-unsigned")")
	fi
	[[ -f $dir/boot/vmlinuz-$KERNEL_VERSION ]] || die "no boot/vmlinuz-$KERNEL_VERSION in $KERNEL_PKG"
	echo "$dir"
}

stage_rootfs() {
	local stage=$1 busybox=$2 applet
	cp -a "$GUEST_DIR/rootfs/." "$stage/"
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,root,var/log,etc/cclm}
	cp "$busybox" "$stage/bin/busybox"
	# Applet links, where busybox would install them (bin/sh, sbin/init, ...).
	for applet in $("$busybox" --list-full); do
		[[ -e $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
	done
}

# stage_modules copies GUEST_MODULES and their dependencies, and writes
# etc/cclm/modules: their paths in load order, for /init's insmod loop.
stage_modules() {
	local stage=$1 kernel_root=$2 busybox=$3
	local moddir=$kernel_root/lib/modules/$KERNEL_VERSION
	# The .deb has no modules.dep (depmod runs at install); busybox makes one.
	[[ -f $moddir/modules.dep ]] || "$busybox" depmod -b "$kernel_root" "$KERNEL_VERSION"
	LOAD_ORDER=()
	declare -gA SEEN_MODULES=()
	local name
	for name in "${GUEST_MODULES[@]}"; do
		add_module_with_deps "$moddir" "$(module_path "$moddir" "$name")"
	done
	local target=$stage/lib/modules/$KERNEL_VERSION relpath
	: >"$stage/etc/cclm/modules"
	for relpath in "${LOAD_ORDER[@]}"; do
		mkdir -p "$target/$(dirname "$relpath")"
		case $relpath in
		*.ko) cp "$moddir/$relpath" "$target/$relpath" ;;
		*.ko.xz) "$busybox" unxz -c "$moddir/$relpath" >"$target/${relpath%.xz}" ;;
		*) die "cannot unpack module $relpath (only .ko and .ko.xz are handled)" ;;
		esac
		echo "${relpath%.xz}" >>"$stage/etc/cclm/modules"
	done
}

module_path() {
	local moddir=$1 name=$2 path
	path=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" | cut -d: -f1 | head -1 || true)
	[[ -n $path ]] || die "module $name not in $KERNEL_PKG (is it built in? see boot/config-$KERNEL_VERSION)"
	echo "$path"
}

# add_module_with_deps: depth-first, dependencies first. modules.dep lists
# every (transitive) dependency of a module, so the recursion is shallow.
add_module_with_deps() {
	local moddir=$1 relpath=$2 dep
	[[ -z ${SEEN_MODULES[$relpath]:-} ]] || return 0
	SEEN_MODULES[$relpath]=1
	# shellcheck disable=SC2013 # one module path per word
	for dep in $(awk -v mod="$relpath:" '$1 == mod { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"); do
		add_module_with_deps "$moddir" "$dep"
	done
	LOAD_ORDER+=("$relpath")
}

build_agent() {
	local output=$1 version
	version=$(cd "$REPO_DIR" && agent_sources | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
	note "building guest agent $version"
	(cd "$REPO_DIR" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$output" ./guest/agent)
}

# write_archive packs the stage with busybox's cpio (no host cpio needed),
# owned by root and with fixed timestamps.
write_archive() {
	local stage=$1 busybox=$2 output=$3
	find "$stage" -exec touch -h -d "$ARCHIVE_MTIME" {} +
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		"$busybox" cpio -o -H newc -R 0:0 --renumber-inodes --ignore-devno) |
		gzip -9n >"$output.tmp"
	mv "$output.tmp" "$output"
}

report() {
	note "built $OUT_DIR: kernel $KERNEL_PKG $KERNEL_PKG_VERSION, $BUSYBOX_PKG $BUSYBOX_VERSION"
	note "  sizes: $(cd "$OUT_DIR" && du -h --apparent-size vmlinuz vmlinux initramfs.img | tr "\t\n" "  ")"
	note "  boot: qemu-system-x86_64 -machine q35 -accel tcg -m 128 -kernel $OUT_DIR/vmlinuz -initrd $OUT_DIR/initramfs.img -append 'console=ttyS0 quiet' -nographic"
	note "  (-kernel $OUT_DIR/vmlinux boots the same kernel without decompressing it: faster under TCG)"
}

main "$@"
