#!/usr/bin/env bash
# Creates (or updates) a venv from a requirements file, only when the file changed.
#   infra/venv.sh [VENV_DIR REQUIREMENTS]   (default: .venv infra/requirements.txt)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/${1:-.venv}"
requirements="$root/${2:-infra/requirements.txt}"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
