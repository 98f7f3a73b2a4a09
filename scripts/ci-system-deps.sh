#!/usr/bin/env bash
# System packages the test suite needs beyond Python/node (called from scripts/test.sh):
# - systemd-analyze, to verify the takopi user unit (Debian package "systemd").
# Idempotent and quiet when everything is already there.
set -euo pipefail

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

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
echo "ci-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v systemd-analyze >/dev/null 2>&1
