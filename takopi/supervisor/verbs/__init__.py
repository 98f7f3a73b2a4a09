"""``takopictl`` verbs: one small handler per verb (schema in ``takopi.supervisor.control``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from takopi.supervisor.verbs import cancel, logs, reload, restart, runs, status, stop


class Supervisor(Protocol):
    """What verbs need from the arbiter."""

    def status(self) -> dict[str, Any]: ...
    async def restart(
        self, names: list[str], *, force: bool, wait_timeout: float
    ) -> dict[str, Any]: ...
    def request_stop(self) -> None: ...
    async def reload(self) -> dict[str, Any]: ...
    def worker_logs(self, name: str, lines: int) -> dict[str, Any]: ...
    def runs_info(self) -> dict[str, Any]: ...
    def cancel_run(self, run_id: str) -> bool: ...


VerbHandler = Callable[[Supervisor, dict[str, Any]], Awaitable[dict[str, Any]]]

VERBS: dict[str, VerbHandler] = {
    "status": status.handle,
    "restart": restart.handle,
    "stop": stop.handle,
    "reload": reload.handle,
    "logs": logs.handle,
    "runs": runs.handle,
    "cancel": cancel.handle,
}


def bind_verbs(
    supervisor: Supervisor,
) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
    """Handlers for :class:`~takopi.supervisor.control.ControlServer`, bound to ``supervisor``."""

    def bind(fn: VerbHandler) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def handler(args: dict[str, Any]) -> dict[str, Any]:
            return await fn(supervisor, args)

        return handler

    return {name: bind(fn) for name, fn in VERBS.items()}


__all__ = ["VERBS", "Supervisor", "bind_verbs"]
