#!/usr/bin/env bash
# Says whether the boot test (tests/test_boot.py) has to run: exit 0 when what it proves (config/,
# scripts/, the unit, Dockerfile.arm64, the dependencies, the test itself) differs from its last
# passing run on this machine, 1 when not. `--record` marks the current files as passed.
#
#   scripts/boot-changed.sh [--record]     (LAYERGUARD_BOOT_CACHE: default /var/cache/layerguard-boot)
set -euo pipefail
cd "$(dirname "$0")/.."
STAMPS=${LAYERGUARD_BOOT_CACHE:-/var/cache/layerguard-boot}/passed

inputs=$(find config scripts Dockerfile.arm64 pyproject.toml tests/test_boot.py tests/boot_vm.py -type f -print0 |
  sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "${1:-}" = --record ]; then
  mkdir -p "$STAMPS"
  touch "$STAMPS/$inputs"
  exit 0
fi
[ ! -e "$STAMPS/$inputs" ]
