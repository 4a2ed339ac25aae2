#!/usr/bin/env bash
# Sets up a fresh checkout and runs `layerguard demo`: a simulated print that fails and is paused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/layerguard demo "$@"
