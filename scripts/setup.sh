#!/usr/bin/env bash
# Prepares a checkout: Mosquitto (the demo and the broker tests start their own on a free port)
# and a virtual environment with LayerGuard and its test tools. With --for-tests, also the
# programs the deployment checks run: systemd-analyze, cloud-init (its schema), netplan
# (network-config) and debootstrap (install.sh in a throw-away Debian root), and OctoPrint, whose
# virtual printer the tests run the agent against, in its own .venv-octoprint (its dependencies
# never mix with LayerGuard's; the version is pinned in sim/octoprint_printer.py).
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=(mosquitto:mosquitto)
if [ "${1:-}" = "--for-tests" ]; then
  pairs+=(systemd-analyze:systemd cloud-init:cloud-init netplan:netplan.io debootstrap:debootstrap)
fi
missing=()
for pair in "${pairs[@]}"; do
  program=${pair%%:*}
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing the Debian packages ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
    # Only its schema checker is wanted: it must never configure this machine at boot.
    $sudo mkdir -p /etc/cloud && $sudo touch /etc/cloud/cloud-init.disabled
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'

if [ "${1:-}" = "--for-tests" ]; then
  octoprint=$(.venv/bin/python -c 'from sim.octoprint_printer import OCTOPRINT_VERSION; print(OCTOPRINT_VERSION)')
  if ! .venv-octoprint/bin/python -c "import octoprint, sys; sys.exit(octoprint.__version__ != '$octoprint')" 2>/dev/null; then
    echo "setup: installing OctoPrint $octoprint into .venv-octoprint (its virtual printer, for the tests)" >&2
    [ -x .venv-octoprint/bin/python ] || python3 -m venv .venv-octoprint
    .venv-octoprint/bin/pip install --quiet --disable-pip-version-check "octoprint==$octoprint"
  fi
fi
