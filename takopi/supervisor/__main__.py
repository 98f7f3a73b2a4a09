"""``python -m takopi.supervisor [--config PATH] [--transport ID] [--engine ID] ...``.

A thin argv front-end for :func:`takopi.supervisor.arbiter.run_supervisor` (the ``takopi``
click CLI is the user-facing entry point; this one is handy for tests and systemd units).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from takopi.supervisor import early


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run the supervisor."""
    parser = argparse.ArgumentParser(prog="python -m takopi.supervisor")
    parser.add_argument("--config", type=Path, default=None, help="path to takopi.toml")
    parser.add_argument("--transport", default=None, help="transport id override")
    parser.add_argument("--default-engine", default=None, help="default engine for new threads")
    parser.add_argument(
        "--engine",
        action="append",
        default=None,
        dest="engines",
        help="only run these engine workers (repeatable)",
    )
    parser.add_argument("--no-final-notify", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument(
        "--no-zygote", action="store_true", help="spawn every worker as a fresh interpreter"
    )
    parser.add_argument(
        "--no-standby", action="store_true", help="keep no pre-imported spare worker"
    )
    args = parser.parse_args(argv)
    early.start_config_check(str(args.config) if args.config is not None else None)
    if not args.no_zygote:
        early.start_early()  # before anything is read: it may fork the zygote from us
    from takopi.supervisor.arbiter import SupervisorOptions, run_supervisor

    options = SupervisorOptions(
        config_path=args.config,
        transport_override=args.transport,
        default_engine_override=args.default_engine,
        final_notify=not args.no_final_notify,
        debug=args.debug,
        engines=args.engines,
        zygote=not args.no_zygote,
        standby=not args.no_standby,
    )
    return run_supervisor(options)


if __name__ == "__main__":
    raise SystemExit(main())
