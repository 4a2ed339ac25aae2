#!/usr/bin/env bash
# Prints the path of a Python X.Y that can make virtual environments: on PATH, or one that pyenv
# installed but does not activate (this machine's image has 3.11 and 3.13 that way). Exit 1 if none.
#
#   scripts/find-python.sh 3.13
set -euo pipefail
version=${1:?usage: find-python.sh X.Y}
root=${PYENV_ROOT:-$HOME/.pyenv}
for candidate in "python$version" "$root"/versions/"$version".*/bin/"python$version" \
  /usr/local/bin/"python$version" /usr/bin/"python$version"; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv, ensurepip' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
exit 1
