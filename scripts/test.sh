#!/usr/bin/env bash
# Sets up a fresh checkout, lints, and runs the test suite. Extra arguments go to pytest.
# LAYERGUARD_PYTHON and LAYERGUARD_VENV choose another interpreter and environment
# (scripts/setup.sh): .ci/run runs this once on Python 3.11 and once on 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LAYERGUARD_VENV:-.venv}
scripts/setup.sh --for-tests
"$VENV/bin/python" --version
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
# The tests mostly wait on ptys, sockets and subprocesses, so four workers fit on two cores.
exec "$VENV/bin/pytest" -n 4 "$@"
