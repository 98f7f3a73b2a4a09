"""``python -m takopi.cli`` = ``takopi`` (used by the systemd unit when no script is found)."""

from takopi.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
