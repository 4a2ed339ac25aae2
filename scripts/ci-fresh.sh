#!/usr/bin/env bash
# Runs .ci/run as CI would on a new machine: a clean clone of a commit inside a fresh Debian root of
# this machine's release, holding only what a new machine of this kind has before the project
# touches it: Python (this machine's pyenv versions, read-only) with pip and its configuration
# (and the local wheel stores that configuration names, read-only), gcc and the C headers, apt,
# CA certificates. No Mosquitto, QEMU, browser or cache: a package, file or program the tests
# need that the project's scripts do not install fails here. The boot test builds its base image
# from nothing too (/var/cache of the root is empty); only binfmt_misc is the host kernel's.
# Prints each CI step's time (from .ci/run) and the whole run's.
#
#   sudo scripts/ci-fresh.sh [COMMIT]     (default HEAD of this checkout; a branch name works)
#
#   LAYERGUARD_FRESH_DIR   where the root is made (default /var/tmp); removed after the run,
#                          also on Ctrl-C or TERM; LAYERGUARD_FRESH_KEEP=1 keeps it
#
# Mounts (/proc, /sys, /dev, /dev/pts, /dev/shm, /run, the read-only binds) live in a mount
# namespace of their own (unshare): they vanish with it, so removing the root never reaches
# through a mount into this machine's files.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "ci-fresh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# The pip configuration and environment of this machine, and the local folders they name.
pip_settings() { compgen -e | grep '^PIP_' || true; }
pip_folders() {
  {
    for name in $(pip_settings); do echo "${!name}"; done
    python3 -m pip config list 2>/dev/null | cut -d= -f2- | tr -d "'"
  } | tr ' ' '\n' | sed -n 's|^file://||;s|/simple/*$||;\|^/|p' | sort -u
}

inside() { # in the new mount namespace: build the root, mount, run .ci/run
  local dir=$1 commit=$2 root=$1/root release mirror started
  release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
  mirror=$("$SRC/scripts/debian-mirror.sh") || die "no Debian mirror found in /etc/apt/sources.list*"
  started=$SECONDS
  # What the host's Pythons link against (Tk left out: no screen), by Debian package.
  local libs
  libs=$(printf '%s\n' "$PYENV_ROOT"/versions/*/bin/python3.* "$PYENV_ROOT"/versions/*/lib/libpython3* \
    "$PYENV_ROOT"/versions/*/lib/python3*/lib-dynload/*.so | grep -v _tkinter |
    { xargs ldd 2>/dev/null || true; } | awk '/=> \//{print $3}' | sort -u |
    while read -r lib; do dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true; done |
    cut -d: -f1 | sort -u | paste -sd,)
  local sources=("deb $mirror $release main" "deb $mirror $release-updates main") security
  security=$("$SRC/scripts/debian-mirror.sh" debian-security) || true
  [ -z "$security" ] || sources+=("deb $security $release-security main")
  say "mmdebstrap $release into $root"
  mmdebstrap --mode=root --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
    --include="ca-certificates,gcc,libc6-dev,$libs" "$release" "$root" "${sources[@]}" >"$dir/mmdebstrap.log" 2>&1 ||
    die "mmdebstrap failed: $(tail -n 20 "$dir/mmdebstrap.log")"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # The CAs this machine trusts (pip's cert names the bundle): a local CA is part of the kind.
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  [ ! -e /etc/pip.conf ] || cp /etc/pip.conf "$root/etc/pip.conf"
  [ ! -d /etc/xdg/pip ] || { mkdir -p "$root/etc/xdg" && cp -r /etc/xdg/pip "$root/etc/xdg/pip"; }

  # The root a mount point of its own, as / is on a machine: `unshare --propagation` (the Pi
  # camera tier's private mount namespace) refuses a root that is only a folder.
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  mount -t tmpfs tmpfs "$root/dev/shm"
  mount -t tmpfs tmpfs "$root/run"
  local folder
  for folder in "$PYENV_ROOT" $(pip_folders); do
    [ -d "$folder" ] || continue
    mkdir -p "$root$folder"
    mount --bind -o ro "$folder" "$root$folder"
  done
  say "root ready in $((SECONDS - started)) s; cloning $commit"
  git clone --quiet --no-checkout "$SRC" "$root/root/ci/layerguard"
  git -C "$root/root/ci/layerguard" checkout --quiet --detach "$commit"

  local env=(HOME=/root "PATH=$PATH" CI=true LANG=C.UTF-8 "PYENV_ROOT=$PYENV_ROOT") name
  for name in $(pip_settings); do env+=("$name=${!name}"); done
  started=$SECONDS
  local status=0
  chroot "$root" env -i "${env[@]}" bash -c 'cd /root/ci/layerguard && bash .ci/run' </dev/null || status=$?
  say ".ci/run exited $status after $((SECONDS - started)) s"
  return "$status"
}

if [ "${1:-}" = --inside ]; then
  inside "$2" "$3"
  exit
fi

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot and mounts need it)"
for tool in mmdebstrap unshare; do
  command -v "$tool" >/dev/null || {
    say "installing mmdebstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  }
done
commit=$(git -C "$SRC" rev-parse --verify "${1:-HEAD}^{commit}") || die "${1:-HEAD}: no such commit"
export PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
dir=$(mktemp -d "${LAYERGUARD_FRESH_DIR:-/var/tmp}/layerguard-ci-fresh.XXXXXX")
child=""

# Ends what runs in the root (its own session, and anything chrooted into it), then removes it.
# shellcheck disable=SC2329 # run by the trap
cleanup() {
  trap - EXIT INT TERM
  local pid tries
  for tries in 1 2 3 4 5 6 7 8 9 10 11; do
    local left=()
    [ -z "$child" ] || ! kill -0 -- "-$child" 2>/dev/null || left+=("-$child")
    for pid in /proc/[0-9]*; do
      [[ "$(readlink "$pid/root" 2>/dev/null)" == "$dir"/* ]] && left+=("${pid#/proc/}")
    done
    [ ${#left[@]} -gt 0 ] || break
    if [ "$tries" = 11 ]; then kill -KILL -- "${left[@]}" 2>/dev/null || true; else kill -TERM -- "${left[@]}" 2>/dev/null || true; fi
    sleep 2
  done
  if [ "${LAYERGUARD_FRESH_KEEP:-0}" = 1 ]; then
    say "kept $dir (the mounts were in the run's own namespace: none is left)"
  elif grep -q " $dir/" /proc/self/mountinfo; then
    say "not removing $dir: something is still mounted under it"
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
say "commit $commit, root in $dir"
setsid --wait unshare --mount --propagation private "$0" --inside "$dir" "$commit" &
child=$!
status=0
wait "$child" || status=$?
say "done in $((SECONDS - started)) s: .ci/run $([ "$status" = 0 ] && echo passed || echo "failed ($status)")"
exit "$status"
