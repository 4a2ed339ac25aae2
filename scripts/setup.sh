#!/usr/bin/env bash
# Prepares a checkout for the demo and the tests: Mosquitto (the demo and the broker tests
# start their own on a free port) and a virtual environment with LayerGuard and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, each only when its program is missing: mosquitto (the broker the tests
# start), and for the deployment checks systemd-analyze, cloud-init (its schema), netplan
# (network-config) and debootstrap (install.sh in a throw-away Debian root).
missing=()
for pair in mosquitto:mosquitto systemd-analyze:systemd cloud-init:cloud-init netplan:netplan.io \
  debootstrap:debootstrap; do
  program=${pair%%:*}
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing the Debian packages ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
