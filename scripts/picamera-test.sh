#!/usr/bin/env bash
# Runs the Pi camera tier (tests/picamera/, marker `picamera`) inside the cached root of
# scripts/picamera-root.sh: real picamera2 over real libcamera and its virtual cameras. The root
# is mounted read-only under a throwaway overlay in a private mount namespace, the checkout is
# bound read-only at /src, and every mount and file made here is gone when the run ends.
#
#   sudo scripts/picamera-test.sh [pytest arguments]      (LAYERGUARD_PICAMERA_TIMEOUT: 900 s)
#   sudo scripts/picamera-test.sh bench                   (bench/picamera.py: capture time, RSS)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || {
  echo "picamera-test: run as root (chroot and mounts need it)" >&2
  exit 1
}
root=$(scripts/picamera-root.sh)/root
scratch=$(mktemp -d /tmp/layerguard-picamera.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/merged"

# shellcheck disable=SC2016  # expanded by the inner shell
exec_in_namespace='
set -euo pipefail
root=$1 scratch=$2 src=$3 timeout_s=$4
shift 4
m=$scratch/merged
mount -t overlay overlay -o "lowerdir=$root,upperdir=$scratch/upper,workdir=$scratch/work" "$m"
mount -t proc proc "$m/proc"
mount -t sysfs sysfs "$m/sys"
# A /dev of its own: no host camera, no /dev/dma_heap; ptys for the virtual printer.
mount -t tmpfs -o mode=755 dev "$m/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 666 "$m/dev/$name" c "$major" "$minor"
done
mkdir "$m/dev/pts" "$m/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$m/dev/pts"
ln -s pts/ptmx "$m/dev/ptmx"
mount -t tmpfs tmpfs "$m/dev/shm"
mkdir -p "$m/src"
mount --bind "$src" "$m/src"
mount -o remount,bind,ro "$m/src"  # the tier reads the checkout, never writes it
cd "$m"
exec chroot "$m" /usr/bin/env -i PATH=/opt/layerguard-venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/src LAYERGUARD_PICAMERA_ROOT=1 \
  sh -c "cd /src && exec timeout -k 10 $timeout_s \"\$@\"" run "$@"
'
if [ "${1:-}" = bench ]; then
  command=(python -m bench.picamera)
else
  # picamera2's own dependencies' DeprecationWarnings under Python 3.14, not ours.
  command=(python -m pytest -p no:cacheprovider -W ignore::DeprecationWarning:videodev2.videodev2
    -W ignore::DeprecationWarning:picamera2.previews.null_preview -m picamera tests/picamera "$@")
fi
unshare --mount --propagation private bash -c "$exec_in_namespace" picamera-test "$root" "$scratch" "$PWD" \
  "${LAYERGUARD_PICAMERA_TIMEOUT:-900}" "${command[@]}"
