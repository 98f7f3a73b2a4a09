#!/usr/bin/env bash
# Installs the pinned real agent CLIs (codex, claude, opencode, pi) from npm into a cache dir
# OUTSIDE the repository, for the tier-2 tests in tests/real_engines/.
#
#   scripts/install-engines.sh            # install (or verify) and print the bin dir
#   TAKOPI_ENGINES_DIR=/some/dir scripts/install-engines.sh
#
# Idempotent: when every pinned version is already installed, it only prints the bin dir.
# The tests find the CLIs through TAKOPI_ENGINES_BIN or <engines dir>/node_modules/.bin.
# stdout carries exactly one line (the bin dir); progress goes to stderr.
set -euo pipefail

dir="${TAKOPI_ENGINES_DIR:-$HOME/.cache/takopi-tests/engines}"

# name@version pairs; keep in sync with tests/real_engines/conftest.py (PINNED).
pins=(
  "@openai/codex@0.169.0"
  "@anthropic-ai/claude-code@2.1.197"
  "opencode-ai@1.18.33"
  "@mariozechner/pi-coding-agent@0.73.1"
)

log() { printf 'install-engines: %s\n' "$*" >&2; }

installed_version() {
  # Prints the installed version of package $1 (empty when missing).
  local pkg_json="$dir/node_modules/$1/package.json"
  [ -f "$pkg_json" ] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$pkg_json"
}

command -v node >/dev/null || { log "node not found on PATH"; exit 1; }
command -v npm >/dev/null || { log "npm not found on PATH"; exit 1; }

# Serialise concurrent runs (e.g. several pytest-xdist workers) on the same cache dir.
mkdir -p "$(dirname "$dir")"
if command -v flock >/dev/null; then
  exec 9>"$(dirname "$dir")/.$(basename "$dir").lock"
  flock 9
fi

missing=()
for pin in "${pins[@]}"; do
  name="${pin%@*}"
  want="${pin##*@}"
  have="$(installed_version "$name")"
  if [ "$have" != "$want" ]; then
    missing+=("$pin")
  fi
done

# The CLIs' own binaries ship as optional platform packages; a half-finished install can
# leave package.json present but the bin missing, so check the bins as well.
for bin in codex claude opencode pi; do
  if [ ! -x "$dir/node_modules/.bin/$bin" ]; then
    missing=("${pins[@]}")
    break
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing into $dir: ${pins[*]} (about 1.2 GB, first run only)"
  mkdir -p "$dir"
  if [ ! -f "$dir/package.json" ]; then
    printf '{"name":"takopi-test-engines","private":true}\n' >"$dir/package.json"
  fi
  # Install everything in one npm transaction so the lockfile stays consistent.
  (
    cd "$dir"
    npm install --no-audit --no-fund --no-save --loglevel=error \
      --prefix "$dir" "${pins[@]}" >&2
  )
  for pin in "${pins[@]}"; do
    name="${pin%@*}"
    want="${pin##*@}"
    have="$(installed_version "$name")"
    if [ "$have" != "$want" ]; then
      log "FAILED: $name is '${have:-missing}', wanted $want"
      exit 1
    fi
  done
  for bin in codex claude opencode pi; do
    if [ ! -x "$dir/node_modules/.bin/$bin" ]; then
      log "FAILED: $dir/node_modules/.bin/$bin missing after install"
      exit 1
    fi
  done
  log "installed"
else
  log "pinned versions already present in $dir"
fi

printf '%s\n' "$dir/node_modules/.bin"
