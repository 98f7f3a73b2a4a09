#!/usr/bin/env bash
# Installs pinned, published third-party takopi plugins (from PyPI) into venvs cached OUTSIDE
# the repository, for the compatibility tests in tests/compat/.
#
#   scripts/install-compat-plugins.sh           # install (or verify) and print the cache dir
#   scripts/install-compat-plugins.sh --check   # print the cache dir if complete, else exit 1
#
# Layout of the printed dir:
#   py311/  venv on the repo's own Python 3.11: takopi (editable) + takopi-scripts
#   py313/  venv on Python 3.13: takopi (editable) + the plugins that use PEP 695 syntax
#           (`type X = ...`), which does not parse on 3.11: kimi, qoder, cursor, cron
#   .complete  marker written last
#
# Plugins are installed the way plugin-surface.md says: `--no-deps --ignore-requires-python`
# (they declare requires-python >= 3.14 and pin the reference takopi; pip must not replace
# this project's takopi), then their own third-party dependencies by name.
# The cache key hashes this script, pyproject.toml and the repo path (the editable install
# points at it), so a change to any of them builds fresh venvs. Idempotent; stdout carries
# exactly one line (the dir), progress goes to stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${TAKOPI_COMPAT_CACHE:-$HOME/.cache/takopi-tests/compat}"

# name==version; keep in sync with tests/compat/plugins.py (PINS).
py311_plugins=("takopi-scripts==0.1.2")
py313_plugins=(
  "takopi-engine-kimi==0.1.0"
  "takopi-engine-qoder==0.2.0"
  "takopi-engine-cursor==0.2.0"
  "takopi-cron==0.1.0"
)
# Third-party dependencies the plugins declare (besides takopi / anyio, which takopi brings).
py313_deps=("msgspec>=0.20.0")
test_deps=("pytest>=8" "pytest-timeout>=2.3")

log() { printf 'install-compat-plugins: %s\n' "$*" >&2; }

key="$(
  {
    cat "${BASH_SOURCE[0]}" "$root/pyproject.toml"
    printf '%s\n' "$root"
  } | sha256sum | cut -c1-16
)"
dir="$base/$key"

if [ "${1:-}" = "--check" ]; then
  [ -f "$dir/.complete" ] || { log "not installed: run scripts/install-compat-plugins.sh"; exit 1; }
  printf '%s\n' "$dir"
  exit 0
fi

find_python() {
  # $1 = minor version ("3.11" / "3.13"): pyenv first, then PATH.
  local want="$1" prefix
  if command -v pyenv >/dev/null; then
    prefix="$(pyenv prefix "$(pyenv versions --bare | grep -E "^${want//./\\.}(\.|$)" | sort -V | tail -n 1)" 2>/dev/null || true)"
    if [ -n "$prefix" ] && [ -x "$prefix/bin/python" ]; then
      printf '%s\n' "$prefix/bin/python"
      return
    fi
  fi
  if command -v "python$want" >/dev/null; then
    command -v "python$want"
    return
  fi
  log "no Python $want found (pyenv or python$want on PATH)"
  exit 1
}

mkdir -p "$base"
if command -v flock >/dev/null; then
  exec 9>"$base/.lock"
  flock 9
fi

if [ -f "$dir/.complete" ]; then
  log "up to date: $dir"
  printf '%s\n' "$dir"
  exit 0
fi

rm -rf "$dir"
mkdir -p "$dir"

make_venv() {
  # $1 = venv dir, $2 = base python; then plugin pins, then "--", then their deps.
  local venv="$1" python="$2"
  shift 2
  local plugins=() deps=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do plugins+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  deps=("$@")
  log "creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install -e "$root" "${test_deps[@]}" "${deps[@]}" >&2
  "${pip[@]}" install --no-deps --ignore-requires-python "${plugins[@]}" >&2
  # The plugins must not have replaced the editable takopi with the reference one.
  "$venv/bin/python" - "$root" <<'EOF' >&2
import pathlib, sys, takopi
where = pathlib.Path(takopi.__file__).resolve()
if not where.is_relative_to(pathlib.Path(sys.argv[1]).resolve()):
    sys.exit(f"takopi resolves to {where}, not the repo")
EOF
}

make_venv "$dir/py311" "$(find_python 3.11)" "${py311_plugins[@]}" --
make_venv "$dir/py313" "$(find_python 3.13)" "${py313_plugins[@]}" -- "${py313_deps[@]}"

touch "$dir/.complete"
log "installed: $dir"
printf '%s\n' "$dir"
