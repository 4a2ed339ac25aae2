#!/usr/bin/env bash
# Says whether a slow test tier has to run: exit 0 when the files under PATH... differ from the
# tier's last passing run on this machine (always on a fresh one), 1 when not. `--record` marks
# the current files as passed. Used by scripts/boot-changed.sh and scripts/picamera-changed.sh.
#
#   scripts/inputs-changed.sh STAMPS-FOLDER [--record] PATH...
set -euo pipefail
cd "$(dirname "$0")/.."
stamps=$1
shift
record=false
if [ "${1:-}" = --record ]; then
  record=true
  shift
fi

inputs=$(find "$@" -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if $record; then
  mkdir -p "$stamps"
  touch "$stamps/$inputs"
  exit 0
fi
[ ! -e "$stamps/$inputs" ]
