#!/usr/bin/env bash
# Builds the base disk image of the boot test (tests/test_boot.py): Debian trixie for arm64 as a
# plain Raspberry Pi OS Lite stand-in (systemd, udev, cloud-init, Python, OpenSSH, Debian's arm64
# kernel), before LayerGuard or any user-data touches it. Built once and cached, keyed by a hash
# of this script, so a warm run costs nothing; prints the cache folder holding vmlinuz,
# initrd.img and rootfs.ext4 (the test boots a copy of the latter).
#
#   sudo scripts/boot-image.sh              # build if needed, print the folder
#   sudo scripts/boot-image.sh --host-tools # only install what the build and the test run here
#
#   LAYERGUARD_BOOT_CACHE   cache root (default /var/cache/layerguard-boot)
#   LAYERGUARD_BOOT_SUITE   Debian release (default trixie; bookworm works too)
#
# How, without a loop device or a mount: mmdebstrap into a folder (the host's apt resolves and
# downloads, the arm64 maintainer scripts run through qemu-user and binfmt_misc), then
# `mkfs.ext4 -d` turns the folder into the image. Not debootstrap --foreign: its second stage
# parses the whole package index with perl under emulation for every package, hours on 2 cores.
# Emulated code is the cost, so the build runs as little of it as it can (see FAST below).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${LAYERGUARD_BOOT_SUITE:-trixie}
CACHE=${LAYERGUARD_BOOT_CACHE:-/var/cache/layerguard-boot}
# Raspberry Pi OS Lite has these; LayerGuard's install.sh must bring the rest itself.
PACKAGES=systemd-sysv,udev,kmod,dbus,cloud-init,netplan.io,python3,python3-venv,openssh-server,sudo,iproute2,dosfstools,e2fsprogs,tzdata,linux-image-arm64
HOST_TOOLS=(qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
  update-binfmts:binfmt-support mmdebstrap:mmdebstrap arch-test:arch-test mkfs.ext4:e2fsprogs mkfs.vfat:dosfstools
  mcopy:mtools ssh:openssh-client socat:socat dpkg-architecture:dpkg-dev # for the eatmydata hook
  depmod:kmod systemd-hwdb:udev) # the image's module index and hardware database, made natively (FAST)

# FAST: what changes how long the build takes, not what the image does.
#  - eatmydata: dpkg's fsync()s are no-ops (the folder is copied into an image file at the end).
#  - No documentation, man pages or translations are unpacked (nothing on the board reads them; the
#    exclusions stay in the image, so its own apt installs skip them too); with no man pages, no
#    man-db trigger has anything to do, and no package in PACKAGES pulls man-db in.
#  - Deferred while packages are configured, then done once at the end: py3compile (each Python
#    package would start Python under emulation to byte-compile itself: one compileall on both
#    cores instead), update-initramfs (built once for the kernel and again for each package that
#    triggers it) and update-ca-certificates (run by its package and again by a trigger).
#  - Done by this machine's own tools on the root's files instead of by arm64 code under
#    emulation: depmod (the kernel's module index, ~45 s emulated) and systemd-hwdb (udev's
#    hardware database, ~40 s emulated); both file formats are the same on every architecture.
#  - The initramfs holds only what mounts this board's root (virtio disk and ext4), not "most"
#    modules: the Pi's own boot differs anyway, and nothing LayerGuard touches lives there.
deferred=(/usr/bin/py3compile /usr/sbin/update-initramfs /usr/sbin/update-ca-certificates /usr/sbin/depmod
  /usr/bin/systemd-hwdb)
# shellcheck disable=SC2016 # the hooks' $1 is the root, given by mmdebstrap
defer_hook='for f in '"${deferred[*]}"'; do
  chroot "$1" dpkg-divert --quiet --local --rename --divert "$f.deferred" --add "$f"
  printf "#!/bin/sh\nexit 0\n" >"$1$f" && chmod 755 "$1$f"
done'
# shellcheck disable=SC2016
undo_hook='for f in '"${deferred[*]}"'; do
  rm "$1$f" && chroot "$1" dpkg-divert --quiet --local --rename --divert "$f.deferred" --remove "$f"
done
for modules in "$1"/usr/lib/modules/*; do depmod -b "$1" "${modules##*/}"; done
systemd-hwdb --root="$1" --usr update
chroot "$1" update-ca-certificates >/dev/null
chroot "$1" sh -c "python3 -m compileall -q -j 0 /usr/lib/python3/dist-packages >/dev/null"
printf "MODULES=list\n" >"$1/etc/initramfs-tools/conf.d/layerguard-boot.conf"
printf "%s\n" virtio_pci virtio_blk ext4 >>"$1/etc/initramfs-tools/modules"
chroot "$1" update-initramfs -c -k all'
FAST=(--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --essential-hook="$defer_hook" --customize-hook="$undo_hook")

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
  # Required, as on Pi OS (cloud-init's runcmd runs install.sh from it). An emulated guest on a
  # busy host can take minutes to name its disks (CI: udev's coldplug done at 159 s, after
  # systemd's 90 s default wait had given up on CIDATA), so it waits for the disk longer.
  printf '%s\n' 'LABEL=rootfs / ext4 defaults 0 1' \
    'LABEL=CIDATA /boot/firmware vfat defaults,x-systemd.device-timeout=10min 0 2' >"$root/etc/fstab"
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
[ "${1:-}" != --host-tools ] || exit 0
key=$({
  echo "$SUITE $PACKAGES ${FAST[*]}"
  declare -f configure
} | sha256sum | cut -c1-16)
out=$CACHE/$SUITE-arm64-$key
# One build at a time (the boot tests run side by side, each asks for the image): a second caller
# waits here and finds it ready.
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

# The chroot runs arm64 programs through qemu-user: binfmt_misc must know them.
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "binfmt_misc has no qemu-aarch64 entry: cannot run the chroot"

mirror=$(scripts/debian-mirror.sh) || die "no Debian mirror found in /etc/apt/sources.list*"

work=$out.build
rm -rf "$work"
mkdir -p "$work"
root=$work/root
say "mmdebstrap $SUITE arm64 into $root (arm64 code under qemu-user: minutes)"
started=$SECONDS
# Each line of the log is stamped with the time, to see where a build spends it.
stamp() { while IFS= read -r line; do printf '%(%T)T %s\n' -1 "$line"; done; }
if ! mmdebstrap --mode=root --arch=arm64 --variant=minbase --verbose "${FAST[@]}" --include="$PACKAGES" \
  "$SUITE" "$root" "$mirror" 2>&1 | stamp >"$work/mmdebstrap.log"; then
  die "mmdebstrap failed: see $work/mmdebstrap.log"
fi

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
say "built $out in $((SECONDS - started)) s"
echo "$out"
