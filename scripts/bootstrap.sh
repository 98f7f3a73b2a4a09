#!/usr/bin/env bash
# Creates .venv (Python 3.11+) with takopi installed editable plus the dev tools.
# Idempotent: re-running only reinstalls when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${TAKOPI_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.takopi-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# Byte-compile takopi now: an editable install has no .pyc files, and where
# PYTHONDONTWRITEBYTECODE is set none would ever be written, so every supervisor and worker
# start would compile the sources again (~100 ms of start-up). Cheap when already current.
.venv/bin/python -m compileall -q takopi >/dev/null
