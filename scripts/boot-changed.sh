#!/usr/bin/env bash
# Says whether the boot test (tests/test_boot.py) has to run: exit 0 when what it proves (config/,
# scripts/, the unit, Dockerfile.arm64, the dependencies, the test itself) differs from its last
# passing run on this machine, 1 when not. `--record` marks the current files as passed.
#
#   scripts/boot-changed.sh [--record]     (LAYERGUARD_BOOT_CACHE: default /var/cache/layerguard-boot)
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/inputs-changed.sh "${LAYERGUARD_BOOT_CACHE:-/var/cache/layerguard-boot}/passed" "$@" \
  config scripts Dockerfile.arm64 pyproject.toml tests/test_boot.py tests/boot_vm.py tests/cloud_init_files.py
