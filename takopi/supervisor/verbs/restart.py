"""``restart [names] [--force]``: restart some or all workers, draining engines' runs."""

from __future__ import annotations

from typing import Any

from takopi.supervisor.control import ControlError
from takopi.supervisor.restart import RestartRefused


async def handle(supervisor: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Restart the named workers (all when ``names`` is empty).

    Engines stop taking new runs (they queue), then without ``force`` their runs in flight
    finish (at most ``wait_timeout`` seconds, default 600, else an error and nothing is
    restarted); with ``force`` they are cancelled. Answers
    ``{"restarted": [names], "waited": n, "cancelled": n}``.
    """
    names = args.get("names") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ControlError("names must be a list of worker names")
    force = args.get("force", False)
    if not isinstance(force, bool):
        raise ControlError("force must be a boolean")
    wait_timeout = args.get("wait_timeout", 600.0)
    if (
        isinstance(wait_timeout, bool)
        or not isinstance(wait_timeout, int | float)
        or wait_timeout <= 0
    ):
        raise ControlError("wait_timeout must be a positive number of seconds")
    try:
        return dict(await supervisor.restart(names, force=force, wait_timeout=float(wait_timeout)))
    except KeyError as exc:
        raise ControlError(f"unknown worker {exc.args[0]!r}") from None
    except RestartRefused as exc:
        raise ControlError(str(exc), code="failed") from None
