#!/usr/bin/env bash
# Builds the root of the Pi camera tier (tests/picamera/): Debian sid (minbase) with Debian's
# libcamera and its `virtual` pipeline handler (test-pattern cameras that need no kernel driver),
# picamera2 from PyPI in a venv that sees the system's libcamera, numpy, av and Pillow, and
# LayerGuard's own dependencies. Built once and cached, keyed by a hash of this script and
# of the dependencies in pyproject.toml, so a warm run costs nothing; prints the root's folder.
#
#   sudo scripts/picamera-root.sh          # build if needed, print the root
#
#   LAYERGUARD_PICAMERA_CACHE   cache folder (default /var/cache/layerguard-picamera)
#
# Why sid: trixie's libcamera 0.4.0 never fills a virtual camera's frame metadata (fixed in 0.5.0,
# "virtual: Fill buffer's metadata"), so picamera2 drops every frame and a capture never returns.
# The root has no virtual.yaml of its own: tests/picamera/ writes one where it wants cameras.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${LAYERGUARD_PICAMERA_CACHE:-/var/cache/layerguard-picamera}
# What Raspberry Pi OS's python3-picamera2 depends on, as far as Debian has it (not python3-kms++:
# the test tier stubs pykms); the rest of picamera2's dependencies are pure Python, from PyPI.
PACKAGES=python3,python3-venv,python3-libcamera,libcamera-ipa,python3-prctl,python3-av,python3-numpy,python3-pil,python3-piexif,python3-jsonschema,python3-libarchive-c,python3-tqdm,ca-certificates,mount
# picamera2 without PiDNG (DNG files of raw frames, which LayerGuard never writes; no wheel for
# sid's Python, and building it needs a compiler: tests/picamera/shims.py stubs it) and without
# OpenEXR (the IMX500 AI camera only).
PICAMERA2="picamera2==0.3.38 simplejpeg==1.9.0 videodev2==0.0.4"
VENV=/opt/layerguard-venv

say() { echo "picamera-root: $*" >&2; }
die() {
  echo "picamera-root: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap and the chroot need it)"

for pair in mmdebstrap:mmdebstrap eatmydata:eatmydata dpkg-architecture:dpkg-dev; do # the last for the eatmydata hook
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ -n "${missing[*]:-}" ]; then
  say "installing the Debian packages ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mirror=$(scripts/debian-mirror.sh) || die "no Debian mirror found in /etc/apt/sources.list*"

# LayerGuard's runtime dependencies and the test runner, read from pyproject.toml (part of the key).
requirements=$(python3 - <<'EOF'
import re
text = open("pyproject.toml").read()
deps = re.findall(r'^\s+"([^"]+)",', text.split("[project.optional-dependencies]")[0], re.M)
dev = re.search(r"^dev = \[(.*?)^\]", text, re.M | re.S).group(1)
deps += [d for d in re.findall(r'"([^"]+)"', dev) if d.split(">")[0] in ("pytest", "pytest-asyncio")]
print(" ".join(f"'{d}'" for d in deps))
EOF
)

key=$({
  cat "$0"
  echo "$requirements"
} | sha256sum | cut -c1-16)
out=$CACHE/sid-$key
if [ -f "$out/ready" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$CACHE"
work=$out.build
rm -rf "$work"
mkdir -p "$work"
say "mmdebstrap sid into $work/root"
# pip trusts what this machine trusts (its CA bundle: a proxy's CA, if any, is in it).
# eatmydata: no fsync for a root thrown away on any change; no documentation or locales.
# Check-Valid-Until: a mirror's sid may lag this machine's clock by weeks (seen: 28 days).
# shellcheck disable=SC2016  # "$1" is the root, for mmdebstrap's hook shell
mmdebstrap --mode=root --variant=minbase --include="$PACKAGES" --aptopt='Acquire::Check-Valid-Until "false"' \
  --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook="chroot \"\$1\" env -i PATH=/usr/bin:/bin HOME=/root python3 -m venv --system-site-packages $VENV" \
  --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/tmp/host-ca.crt"' \
  --customize-hook="chroot \"\$1\" env -i PATH=/usr/bin:/bin HOME=/root PIP_CERT=/tmp/host-ca.crt $VENV/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-deps $PICAMERA2 \
    && chroot \"\$1\" env -i PATH=/usr/bin:/bin HOME=/root PIP_CERT=/tmp/host-ca.crt $VENV/bin/pip install -q --no-cache-dir --disable-pip-version-check $requirements" \
  --customize-hook='rm "$1/tmp/host-ca.crt"' \
  --customize-hook='chroot "$1" apt-get clean' \
  sid "$work/root" "$mirror" >"$work/mmdebstrap.log" 2>&1 || die "mmdebstrap failed: see $work/mmdebstrap.log"
touch "$work/ready"
rm -rf "$out"
mv "$work" "$out"
say "built $out"
echo "$out"
