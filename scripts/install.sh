#!/usr/bin/env bash
# Installs LayerGuard from this checkout as a systemd service on Raspberry Pi OS (or Debian):
# apt packages, the `layerguard` user, a virtual environment in /opt/layerguard, the config in
# /etc/layerguard (an existing one is kept), the udev rule and the unit, enabled and started.
# Safe to run again: that is also how to upgrade.
#
#   sudo scripts/install.sh [--config FILE] [--printer NAME]... [--wheelhouse DIR] [--no-start]
#   sudo scripts/install.sh --uninstall [--purge]
#
#   --config FILE     install FILE as /etc/layerguard/layerguard.toml (the old one is kept as .bak);
#                     without it an existing config is left alone and a new install gets the default
#   --printer NAME    several printers on this Pi: one agent per printer, layerguard@NAME.service,
#                     configured in /etc/layerguard/NAME.toml (kept if there, else the default; with
#                     one --printer, --config FILE installs FILE there), secrets in
#                     /etc/layerguard/NAME/secrets (the Pi's /etc/layerguard/secrets are read too).
#                     Repeat it for each printer; the plain layerguard.service is then not enabled.
#   --wheelhouse DIR  install LayerGuard and its dependencies from DIR (scripts/make-wheelhouse.sh),
#                     without the network; default: wheelhouse/ next to scripts/ when it is there
#   --no-start        enable the service but do not (re)start it now
#   --uninstall    remove the service, udev rule and virtual environment; keeps the config,
#                  secrets, state and the user unless --purge is given too
set -euo pipefail

NAME=layerguard
PREFIX=/opt/layerguard
VENV=$PREFIX/venv
ETC=/etc/layerguard
STATE=/var/lib/layerguard
UNIT=/etc/systemd/system/layerguard.service
TEMPLATE=/etc/systemd/system/layerguard@.service
RULE_NAME=99-layerguard-printer.rules
RULE=/etc/udev/rules.d/$RULE_NAME
LINK=/usr/local/bin/layerguard
SRC=$(cd "$(dirname "$0")/.." && pwd)
# python3-matplotlib from apt (bookworm 3.6, trixie 3.8) draws the print reports: pip's would bring
# its own numpy into the venv, in front of the apt numpy that python3-picamera2 is built against.
APT_PACKAGES=(python3 python3-venv python3-matplotlib)

say() { echo "install: $*"; }
die() {
  echo "install: $*" >&2
  exit 1
}

config=""
wheelhouse=""
start=1
uninstall=0
purge=0
printers=()
while [ $# -gt 0 ]; do
  case "$1" in
  --config)
    [ $# -ge 2 ] || die "--config needs a file"
    config=$2
    shift
    ;;
  --wheelhouse)
    [ $# -ge 2 ] || die "--wheelhouse needs a folder"
    wheelhouse=$2
    shift
    ;;
  --printer)
    [ $# -ge 2 ] || die "--printer needs a name"
    [[ $2 =~ ^[A-Za-z0-9_-]+$ ]] || die "--printer $2: use letters, digits, - and _ (it names the service, config and MQTT topics)"
    [ "$2" != "$NAME" ] || die "--printer $2: that name is the Pi's own config (/etc/layerguard/$NAME.toml); choose another"
    printers+=("$2")
    shift
    ;;
  --no-start) start=0 ;;
  --uninstall) uninstall=1 ;;
  --purge) purge=1 ;;
  -h | --help)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || die "run as root: sudo $0 $*"
[ -z "$config" ] || [ -f "$config" ] || die "--config $config: no such file"
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge goes with --uninstall"
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || die "--wheelhouse $wheelhouse: no such folder"
[ -n "$wheelhouse" ] || [ ! -d "$SRC/wheelhouse" ] || wheelhouse=$SRC/wheelhouse
[ -z "$config" ] || [ ${#printers[@]} -le 1 ] || die "--config goes with one --printer at most (one config per printer)"

# systemd and udev are running (a booted system), or not (a chroot or an image being built).
booted() { [ -d /run/systemd/system ]; }
udev_running() { [ -S /run/udev/control ] && command -v udevadm >/dev/null; }

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

install_packages() {
  local missing=() available=() pkg
  for pkg in "${APT_PACKAGES[@]}" python3-picamera2; do
    installed "$pkg" || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if ! apt-get update -qq --error-on=any -o Acquire::Retries=0 -o Acquire::http::Timeout=20; then
    # Offline (a first boot without network, with the wheelhouse): only what is missing matters.
    # picamera2 can be done without; matplotlib then comes from the wheelhouse (with its numpy).
    for pkg in "${missing[@]}"; do
      case $pkg in
      python3-picamera2) say "apt cannot reach its sources: no python3-picamera2 (use an http:// snapshot URL as camera.source)" ;;
      python3-matplotlib) [ -n "$wheelhouse" ] || die "apt cannot reach its sources and $pkg is missing"
        say "apt cannot reach its sources: matplotlib (the print reports) comes from the wheelhouse" ;;
      *) die "apt cannot reach its sources and $pkg is missing" ;;
      esac
    done
    return 0
  fi
  for pkg in "${missing[@]}"; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then
      available+=("$pkg")
    elif [ "$pkg" = python3-picamera2 ]; then # from Raspberry Pi's repository, with libcamera
      say "python3-picamera2 is not in this system's apt sources: use an http:// snapshot URL as camera.source"
    else
      die "$pkg is not in this system's apt sources"
    fi
  done
  [ ${#available[@]} -gt 0 ] || return 0
  say "installing ${available[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
}

create_user() {
  local group
  for group in dialout video; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  if ! getent passwd "$NAME" >/dev/null; then
    say "creating the system user $NAME"
    useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$NAME"
  fi
  usermod --append --groups dialout,video "$NAME"
  install -d -o "$NAME" -g "$NAME" -m 0750 "$STATE"
}

install_venv() {
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  if [ -n "$wheelhouse" ]; then
    install_from_wheelhouse
    return
  fi
  # Build from a copy: pip would leave build/ and *.egg-info in the checkout (or on a FAT boot partition).
  BUILD=$(mktemp -d)
  trap 'rm -rf "$BUILD"' EXIT
  cp -r "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/agent" "$SRC/hardware" "$SRC/sim" "$BUILD/"
  say "installing LayerGuard into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --upgrade "$BUILD"
  ln -sf "$VENV/bin/layerguard" "$LINK"
}

install_from_wheelhouse() {
  local want have
  have=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  want=$(cat "$wheelhouse/PYTHON_VERSION" 2>/dev/null) || want=$have
  [ "$want" = "$have" ] ||
    die "$wheelhouse holds wheels for Python $want, this system has $have: scripts/make-wheelhouse.sh --python-version $have"
  say "installing LayerGuard into $VENV from $wheelhouse (offline)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --no-index \
    --find-links "$wheelhouse" --upgrade layerguard
  ln -sf "$VENV/bin/layerguard" "$LINK"
}

install_config() {
  local printer
  install -d -m 0755 "$ETC"
  install_secrets "$ETC/secrets"
  if [ ${#printers[@]} -eq 0 ]; then
    install_config_file "$ETC/layerguard.toml"
    return
  fi
  for printer in "${printers[@]}"; do
    install_secrets "$ETC/$printer/secrets"
    install_config_file "$ETC/$printer.toml" "$(free_page_port)"
  done
}

# A printer's page needs a port of its own: only one agent can have 80. A new printer's config
# gets the first of 80, 8081, 8082, ... that no config here claims (web.listen, or 80 unset).
free_page_port() {
  local taken=" " file port
  for file in "$ETC"/*.toml; do
    [ -f "$file" ] || continue
    port=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*"[^"]*:\([0-9]*\)".*/\1/p' "$file" | head -n 1)
    taken+="${port:-80} "
  done
  for port in 80 $(seq 8081 8999); do
    [[ $taken == *" $port "* ]] || { echo "$port"; return; }
  done
}

# Secret files (say, written by cloud-init as root) must be readable by the agent's group.
install_secrets() {
  install -d -m 0755 "$(dirname "$1")"
  install -d -o root -g "$NAME" -m 0750 "$1"
  find "$1" -maxdepth 1 -type f -exec chown root:"$NAME" {} + -exec chmod 0640 {} +
}

install_config_file() {
  local target=$1 port=${2:-}
  if [ -n "$config" ]; then
    [ ! -f "$target" ] || cp -p "$target" "$target.bak"
    install -o root -g "$NAME" -m 0640 "$config" "$target"
    say "installed $config as $target"
  elif [ -f "$target" ]; then
    # Written by someone else (cloud-init's write_files: root:root): the agent must read it.
    chown root:"$NAME" "$target"
    chmod 0640 "$target"
    say "keeping your $target"
  else
    install -o root -g "$NAME" -m 0640 "$SRC/config/layerguard.toml" "$target"
    say "installed the default $target: set printer.port in it"
    if [ -n "$port" ]; then
      sed -i "s|^# listen = \"0.0.0.0:80\"\$|listen = \"0.0.0.0:$port\"|" "$target"
      say "its page: port $port (web.listen; every printer's page lists all of them at /pi)"
    fi
  fi
}

install_udev_rule() {
  if [ ! -f "$SRC/config/$RULE_NAME" ]; then
    say "no config/$RULE_NAME in this checkout: skipping the udev rule (use /dev/serial/by-id/... as printer.port)"
    return
  fi
  install -m 0644 "$SRC/config/$RULE_NAME" "$RULE"
  if udev_running; then
    udevadm control --reload
    udevadm trigger --subsystem-match=tty --action=add
  fi
}

install_unit() {
  local services=("$NAME.service") printer
  install -m 0644 "$SRC/config/layerguard.service" "$UNIT"
  install -m 0644 "$SRC/config/layerguard@.service" "$TEMPLATE"
  if [ ${#printers[@]} -gt 0 ]; then
    services=()
    for printer in "${printers[@]}"; do services+=("$NAME@$printer.service"); done
    ! systemctl is-enabled --quiet "$NAME.service" 2>/dev/null ||
      say "$NAME.service (/etc/layerguard/layerguard.toml) stays enabled: if one of the printers above is its printer, systemctl disable --now $NAME"
  fi
  if booted; then
    systemctl daemon-reload
    systemctl enable --quiet "${services[@]}"
    if [ "$start" = 1 ]; then
      # --no-block: READY=1 waits for the printer (up to 30 s); the journal shows how it went.
      systemctl restart --no-block "${services[@]}"
      say "started ${services[*]}: journalctl -u '$NAME*' -f   (and: sudo -u $NAME $LINK doctor --all)"
    fi
  else
    systemctl enable --quiet "${services[@]}" # offline: it starts at the next boot
    say "enabled ${services[*]}; they start at the next boot"
  fi
}

# The printers' agents enabled on this system (layerguard@NAME.service), one unit name a line.
enabled_instances() {
  find /etc/systemd/system -path "*.wants/$NAME@*.service" -printf '%f\n' 2>/dev/null | sort -u
}

uninstall() {
  local instances
  instances=$(enabled_instances) # no process substitution: a chroot may have no /dev/fd
  if [ -n "$instances" ]; then
    # shellcheck disable=SC2086 # unit names, one a line, without spaces
    if booted; then
      systemctl disable --now --quiet $instances || true
    else
      systemctl disable --quiet $instances || true
    fi
  fi
  rm -f "$TEMPLATE"
  if [ -f "$UNIT" ]; then
    if booted; then
      systemctl disable --now --quiet "$NAME.service" || true
    else
      systemctl disable --quiet "$NAME.service" || true
    fi
    rm -f "$UNIT"
    ! booted || systemctl daemon-reload
  fi
  if [ -f "$RULE" ]; then
    rm -f "$RULE"
    ! udev_running || udevadm control --reload
  fi
  rm -rf "$PREFIX"
  [ ! -L "$LINK" ] || rm -f "$LINK"
  if [ "$purge" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    ! getent passwd "$NAME" >/dev/null || userdel "$NAME"
    say "removed LayerGuard, its config, secrets, state and user"
  else
    say "removed LayerGuard; kept $ETC (config, secrets), $STATE and the user $NAME (--purge removes them)"
  fi
}

if [ "$uninstall" = 1 ]; then
  uninstall
  exit 0
fi
install_packages
create_user
install_venv
install_config
install_udev_rule
install_unit
say "done"
