#!/usr/bin/env bash
# System packages the test suite needs beyond Python/node (called from scripts/test.sh):
# - systemd-analyze, to verify the takopi user unit (Debian package "systemd");
# - PostgreSQL server + psql, for the takopi-linear compat tests, which start a throwaway
#   cluster of their own (Debian package "postgresql"; no system cluster is created);
# - the openssl CLI, which makes the certificates of the TLS trust tests.
# Idempotent and quiet when everything is already there.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1 &&
    compgen -G "/usr/lib/postgresql/*/bin/psql" >/dev/null 2>&1
}

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
have_postgres || missing+=(postgresql)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-system-deps: need ${missing[*]} but apt-get is not available" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # The tests run their own clusters: keep the package from creating (and starting) one.
  $sudo mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    $sudo tee /etc/postgresql-common/createcluster.d/takopi-tests.conf >/dev/null
fi
echo "ci-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v systemd-analyze >/dev/null 2>&1
have_postgres
