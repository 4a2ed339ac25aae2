#!/usr/bin/env bash
# Says whether the Pi camera tier (tests/picamera/) has to run: exit 0 when what it proves
# (hardware/camera/, the tier, its scripts, the dependencies) differs from its last passing run on
# this machine (always on a fresh one), 1 when not. `--record` marks the current files as passed.
#
#   scripts/picamera-changed.sh [--record]   (LAYERGUARD_PICAMERA_CACHE: /var/cache/layerguard-picamera)
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/inputs-changed.sh "${LAYERGUARD_PICAMERA_CACHE:-/var/cache/layerguard-picamera}/passed" "$@" \
  hardware/camera tests/picamera scripts/picamera-root.sh scripts/picamera-test.sh pyproject.toml
