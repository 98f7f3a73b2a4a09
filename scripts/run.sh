#!/usr/bin/env bash
# Set up (first run only) and start takopi. With no arguments it chats in this terminal through
# the console transport, so no Telegram bot token is needed; any takopi flags may be added
# (e.g. `scripts/run.sh --transport telegram`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
if [ "$#" -eq 0 ]; then
  set -- --transport console
fi
exec "$root/.venv/bin/takopi" "$@"
