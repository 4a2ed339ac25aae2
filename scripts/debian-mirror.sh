#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt uses (one-line or deb822 sources), for the roots and
# images the project builds: they fetch from where this machine does. Exit 1 if none is found.
#
#   scripts/debian-mirror.sh                   # e.g. http://deb.debian.org/debian
#   scripts/debian-mirror.sh debian-security   # the security archive's, e.g. .../debian-security
set -euo pipefail
archive=${1:-debian}
mirror=$(grep -rhE '^(deb|URIs:)[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
  grep -oE "https?://[^[:space:]]+/$archive/?([[:space:]]|\$)" | grep -oE 'https?://[^[:space:]]+' | sed -n 's:/$::;1p') || true
[ -n "$mirror" ] && echo "$mirror"
