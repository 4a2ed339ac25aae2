#!/usr/bin/env bash
# Sets up a fresh checkout, lints, and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The tests mostly wait on ptys, sockets and subprocesses, so four workers fit on two cores.
exec .venv/bin/pytest -n 4 "$@"
