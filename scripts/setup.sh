#!/usr/bin/env bash
# Prepares a checkout: Mosquitto (the demo and the broker tests start their own on a free port)
# and a virtual environment with LayerGuard and its test tools. With --for-tests, also the
# programs the deployment checks run: systemd-analyze, cloud-init (its schema), netplan
# (network-config) and debootstrap (install.sh in a throw-away Debian root).
#
#   LAYERGUARD_PYTHON  the interpreter for a new environment (default python3)
#   LAYERGUARD_VENV    the environment's folder (default .venv; CI also makes .venv313)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${LAYERGUARD_PYTHON:-python3}
VENV=${LAYERGUARD_VENV:-.venv}

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

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[dev]'
