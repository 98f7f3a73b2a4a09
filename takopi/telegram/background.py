"""Background tasks of the chat loop: started in its task group, failures logged, never fatal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from takopi.logging import get_logger

log = get_logger(__name__)


class Background:
    """Starts guarded tasks in the loop's task group."""

    def __init__(self, task_group: TaskGroup) -> None:
        self.task_group = task_group

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background; its errors are logged, never fatal."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                log.exception(
                    "telegram.task_failed", task=getattr(fn, "__name__", "?"), error=str(exc)
                )

        self.task_group.start_soon(guarded)


__all__ = ["Background"]
