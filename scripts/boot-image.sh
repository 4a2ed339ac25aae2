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
# How, without a loop device or a mount: debootstrap --foreign into a folder, its second stage
# in a chroot through qemu-user (binfmt_misc), then `mkfs.ext4 -d` turns the folder into the image.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${LAYERGUARD_BOOT_SUITE:-trixie}
CACHE=${LAYERGUARD_BOOT_CACHE:-/var/cache/layerguard-boot}
# Raspberry Pi OS Lite has these; LayerGuard's install.sh must bring the rest itself.
PACKAGES=systemd-sysv,udev,kmod,dbus,cloud-init,netplan.io,python3,python3-venv,openssh-server,sudo,iproute2,dosfstools,linux-image-arm64
HOST_TOOLS=(qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
  update-binfmts:binfmt-support debootstrap:debootstrap mkfs.ext4:e2fsprogs mkfs.vfat:dosfstools
  mcopy:mtools ssh:openssh-client)

say() { echo "boot-image: $*" >&2; }
die() {
  echo "boot-image: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and the chroot need it)"

key=$(cat "$0" <(echo "$SUITE") | sha256sum | cut -c1-16)
out=$CACHE/$SUITE-arm64-$key
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

missing=()
for pair in "${HOST_TOOLS[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing the Debian packages ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
say "debootstrap $SUITE arm64 into $root (first stage)"
debootstrap --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  die "debootstrap failed: see $work/debootstrap.log"
say "second stage (arm64 code under qemu-user: slow)"
chroot "$root" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
  die "debootstrap's second stage failed: see $work/debootstrap.log"

say "configuring"
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
rm -rf "$root"/var/lib/apt/lists/* "$root/debootstrap"
: >"$root/etc/machine-id"

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
