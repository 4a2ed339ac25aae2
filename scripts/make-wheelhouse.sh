#!/usr/bin/env bash
# Makes the wheelhouse for an offline install on a Pi: LayerGuard itself as a wheel plus a wheel
# of every dependency for Linux on arm64 (aarch64), made on any machine with Python and pip.
# Copy the folder to the SD card's boot partition as layerguard/wheelhouse/ (next to
# scripts/ and config/ of the checkout): install.sh then installs from it without any network.
#
#   scripts/make-wheelhouse.sh [--python-version 3.13] [--out DIR]
#
#   --python-version  the Pi's Python: 3.13 for Raspberry Pi OS trixie (default), 3.11 for bookworm
#   --out DIR         where to put the wheels (default: wheelhouse/ in this checkout)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)

python_version=3.13
out=$SRC/wheelhouse
while [ $# -gt 0 ]; do
  case "$1" in
  --python-version)
    python_version=${2:?--python-version needs a version such as 3.13}
    shift
    ;;
  --out)
    out=${2:?--out needs a folder}
    shift
    ;;
  -h | --help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "make-wheelhouse: unknown option $1 (see --help)" >&2
    exit 1
    ;;
  esac
  shift
done
[[ $python_version =~ ^3\.[0-9]+$ ]] || {
  echo "make-wheelhouse: --python-version $python_version: expected 3.N" >&2
  exit 1
}
PYTHON=${PYTHON:-python3}

mkdir -p "$out"
rm -f "$out"/*.whl
# Build from a copy: pip would leave build/ and *.egg-info in the checkout.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/agent" "$SRC/hardware" "$SRC/sim" "$build/"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$out" "$build"
wheels=("$out"/layerguard-*.whl)
wheel=${wheels[0]}
# Binary wheels only, for the Pi's platform and Python (pure-Python ones are py3-none-any).
# manylinux_2_28 covers the newer builds (glibc 2.28; bookworm has 2.36, trixie 2.41).
"$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$out" --only-binary=:all: \
  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
  --implementation cp --python-version "$python_version" "$wheel"
echo "$python_version" >"$out/PYTHON_VERSION"
wheels=("$out"/*.whl)
echo "make-wheelhouse: ${#wheels[@]} wheels for Python $python_version on aarch64 in $out"
