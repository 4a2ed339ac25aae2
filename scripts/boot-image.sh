#!/usr/bin/env bash
# Builds the base disk image of the boot test (tests/test_boot.py): Debian trixie for arm64 as a
# plain Raspberry Pi OS Lite stand-in (systemd, udev, cloud-init, Python, OpenSSH, Debian's arm64
# kernel), before LayerGuard or any user-data touches it. Built once and cached, keyed by a hash
# of this script, so a warm run costs nothing; prints the cache folder holding vmlinuz,
# initrd.img and rootfs.ext4 (the test boots a copy of the latter).
#
#   sudo scripts/boot-image.sh            # build if needed, print the folder
#
#   LAYERGUARD_BOOT_CACHE   cache root (default /var/cache/layerguard-boot)
#   LAYERGUARD_BOOT_SUITE   Debian release (default trixie; bookworm works too)
#
# How, without a loop device or a mount: mmdebstrap into a folder (the host's apt resolves and
# downloads, the arm64 maintainer scripts run through qemu-user and binfmt_misc), then
# `mkfs.ext4 -d` turns the folder into the image. Not debootstrap --foreign: its second stage
# parses the whole package index with perl under emulation for every package, hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${LAYERGUARD_BOOT_SUITE:-trixie}
CACHE=${LAYERGUARD_BOOT_CACHE:-/var/cache/layerguard-boot}
# Raspberry Pi OS Lite has these; LayerGuard's install.sh must bring the rest itself.
PACKAGES=systemd-sysv,udev,kmod,dbus,cloud-init,netplan.io,python3,python3-venv,openssh-server,sudo,iproute2,dosfstools,e2fsprogs,tzdata,linux-image-arm64
HOST_TOOLS=(qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
  update-binfmts:binfmt-support mmdebstrap:mmdebstrap arch-test:arch-test mkfs.ext4:e2fsprogs mkfs.vfat:dosfstools
  mcopy:mtools ssh:openssh-client socat:socat)

say() { echo "boot-image: $*" >&2; }
die() {
  echo "boot-image: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap and the chroot need it)"

# What makes the image a first-boot Pi stand-in, after mmdebstrap: part of the cache key.
configure() {
  local root=$1
  echo layerguard-base >"$root/etc/hostname"
  # The SD card's boot partition: on Raspberry Pi OS a FAT partition at /boot/firmware that also
  # holds cloud-init's files. Here it is the NoCloud seed disk (label CIDATA) the test attaches.
  printf '%s\n' 'LABEL=rootfs / ext4 defaults 0 1' 'LABEL=CIDATA /boot/firmware vfat defaults,nofail 0 2' >"$root/etc/fstab"
  mkdir -p "$root/boot/firmware"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$SUITE" >"$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
  # Host keys are made on first boot (cloud-init), as on a fresh image; none may ship in it.
  rm -f "$root"/etc/ssh/ssh_host_*
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/*
  : >"$root/etc/machine-id"
}

missing=()
for pair in "${HOST_TOOLS[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing the Debian packages ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
key=$({
  echo "$SUITE $PACKAGES"
  declare -f configure
} | sha256sum | cut -c1-16)
out=$CACHE/$SUITE-arm64-$key
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

# The chroot runs arm64 programs through qemu-user: binfmt_misc must know them.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64 entry: cannot run the chroot"

# The Debian mirror this machine's apt already uses.
mirror=$(grep -rhoE '^(deb|URIs:)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE 'https?://[^[:space:]]+' | head -n1) || true
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"

work=$out.build
rm -rf "$work"
mkdir -p "$work"
root=$work/root
say "mmdebstrap $SUITE arm64 into $root (arm64 code under qemu-user: slow)"
mmdebstrap --mode=root --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" \
  >"$work/mmdebstrap.log" 2>&1 || die "mmdebstrap failed: see $work/mmdebstrap.log"

say "configuring"
configure "$root"

cp -L "$root/vmlinuz" "$work/vmlinuz"
cp -L "$root/initrd.img" "$work/initrd.img"
say "making rootfs.ext4"
mkfs.ext4 -q -L rootfs -d "$root" "$work/rootfs.ext4" 3G
rm -rf "$root"
touch "$work/ready"
rm -rf "$out"
mv "$work" "$out"
say "built $out"
echo "$out"
