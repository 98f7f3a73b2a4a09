#!/usr/bin/env bash
# Everything CI runs: set-up (venv, agent CLIs from npm, system tools), lint, type check, tests.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -x`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
[ -f scripts/ci-system-deps.sh ] && bash scripts/ci-system-deps.sh
engines_bin="$(bash scripts/install-engines.sh | tail -n 1)"
export TAKOPI_ENGINES_BIN="$engines_bin"
bash scripts/install-compat-plugins.sh >/dev/null
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy takopi
echo "== pytest"
exec .venv/bin/pytest -p no:cacheprovider "$@"
