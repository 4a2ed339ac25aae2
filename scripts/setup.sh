#!/usr/bin/env bash
# Prepares a checkout: Mosquitto (the demo and the broker tests start their own on a free port)
# and a virtual environment with LayerGuard and its test tools. With --for-tests, also the
# programs the tests run: openssl (the TLS broker's certificates), systemd-analyze, cloud-init (its
# schema), netplan (network-config), debootstrap (install.sh in a throw-away Debian root) and
# Chromium with its driver (the web page's browser tests), g++ (Home Assistant 2025.4 on Python 3.13
# builds pymicro-vad and pyspeex-noise from source: PyPI has no wheel of them for it); Home Assistant
# releases in `.venv-ha-<release>`, whose own MQTT code reads our discovery in
# tests/test_home_assistant.py: the oldest and newest we support on Python 3.11, and today's on 3.13;
# and OctoPrint, whose virtual printer the tests run the agent against, in its own .venv-octoprint
# (its dependencies never mix with LayerGuard's; the version is pinned in sim/octoprint_printer.py).
# Those four environments are installed side by side, each saying how long it took.
# (The boot test's QEMU and image tools: scripts/boot-image.sh installs them.)
#
#   LAYERGUARD_PYTHON  the interpreter for a new environment (default python3)
#   LAYERGUARD_VENV    the environment's folder (default .venv; CI also makes .venv313)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${LAYERGUARD_PYTHON:-python3}
VENV=${LAYERGUARD_VENV:-.venv}

pairs=(mosquitto:mosquitto)
if [ "${1:-}" = "--for-tests" ]; then
  # chromium: the page's browser tests (tests/test_web_browser.py), driven by PyPI's playwright;
  # g++: Home Assistant 2025.4 on Python 3.13 compiles two C++ extensions.
  pairs+=(openssl:openssl systemd-analyze:systemd cloud-init:cloud-init netplan:netplan.io debootstrap:debootstrap
    chromium:chromium g++:g++)
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


# Home Assistant <release> on <python>, with the requirements of the integrations the test loads.
# A release that cannot be installed here is left out with a warning (the test says which ran).
ha_venv() {
  local release=$1 dir=.venv-ha-$1 python started=$SECONDS
  python=$(scripts/find-python.sh "$2") || true
  if [ -z "$python" ]; then
    echo "setup: no Python $2, so no Home Assistant $release" >&2
    return
  fi
  if [ -x "$dir/bin/python" ] &&
    "$dir/bin/python" -c "import homeassistant.const as c; assert c.__version__ == '$release'" 2>/dev/null; then
    return
  fi
  echo "setup: creating $dir (Home Assistant $release)" >&2
  rm -rf "$dir"
  # With Home Assistant's own pins (package_constraints.txt in its wheel, which its installer uses
  # too): without them pip backtracks through dozens of source releases (bluetooth-data-tools) and
  # builds each one on a machine with an empty pip cache, for 20 minutes and more.
  local pip=("$dir/bin/pip" install --quiet --disable-pip-version-check -c "$dir/constraints.txt")
  # shellcheck disable=SC2046  # the requirements are one word each
  if ! { "$python" -m venv "$dir" &&
    "$dir/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$dir/wheel" "homeassistant==$release" &&
    "$dir/bin/python" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(
"homeassistant/package_constraints.txt"))' "$dir/wheel/homeassistant-$release-py3-none-any.whl" >"$dir/constraints.txt" &&
    "${pip[@]}" "$dir/wheel/homeassistant-$release-py3-none-any.whl" &&
    "${pip[@]}" $("$dir/bin/python" -c '
import json, pathlib, homeassistant.components as c
root = pathlib.Path(c.__file__).parent
print(" ".join(r for d in ("mqtt", "http", "file_upload") for r in json.loads((root / d / "manifest.json").read_text()).get("requirements", [])))'); }; then
    echo "setup: could not install Home Assistant $release; its test is left out" >&2
    rm -rf "$dir"
    return
  fi
  echo "setup: $dir: $((SECONDS - started)) s" >&2
}

octoprint_venv() {
  local started=$SECONDS octoprint
  octoprint=$(sed -n 's/^OCTOPRINT_VERSION = "\([^"]*\)".*/\1/p' sim/octoprint_printer.py)
  [ -n "$octoprint" ] || { echo "setup: no OCTOPRINT_VERSION in sim/octoprint_printer.py" >&2; return 1; }
  if .venv-octoprint/bin/python -c "import octoprint, sys; sys.exit(octoprint.__version__ != '$octoprint')" 2>/dev/null; then
    return
  fi
  echo "setup: installing OctoPrint $octoprint into .venv-octoprint (its virtual printer, for the tests)" >&2
  [ -x .venv-octoprint/bin/python ] || python3 -m venv .venv-octoprint
  .venv-octoprint/bin/pip install --quiet --disable-pip-version-check "octoprint==$octoprint"
  echo "setup: .venv-octoprint: $((SECONDS - started)) s" >&2
}

waits=()
if [ "${1:-}" = "--for-tests" ]; then
  ha_venv 2024.1.6 3.11 &
  ha_venv 2024.3.3 3.11 &
  ha_venv 2025.4.4 3.13 &
  octoprint_venv &
  waits+=($!) # the others leave their test out when they fail; OctoPrint's failure fails setup
fi

started=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[dev]'
echo "setup: $VENV: $((SECONDS - started)) s" >&2
for pid in "${waits[@]}"; do wait "$pid"; done
wait
