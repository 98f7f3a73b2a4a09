"""What a transport plugin still owes its chats, so a stopping worker can let it finish.

The plugin runs its own event loop on its own thread (``build_and_run``). The proxies tell
:data:`TRACKER` about the plugin's loop and about every task that consumes a run or a command
— together with the task that started it, which is where the final message is sent
(``handle_message`` consumes the run in a child task and sends the answer afterwards). On
SIGTERM the transport worker waits (bounded) until those tasks are done, then asks the loop to
stop the way Ctrl-C would: by cancelling its root task.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

from takopi.logging import get_logger

log = get_logger(__name__)


class ConsumerTracker:
    """Tasks of the plugin's event loop that have a reply to deliver."""

    def __init__(self) -> None:
        self._tasks: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def note_loop(self) -> None:
        """Remember the running loop of the calling thread (the plugin's)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.loop is not loop:
            self.loop = loop

    def enter(self, *, with_parent: bool = False) -> None:
        """The current task will deliver something; ``with_parent``: so will the task that
        started it (unless that is the loop's root task, which lives as long as the loop)."""
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return
        if task is None:
            return
        self.note_loop()
        found = [task]
        parent = _parent_task(task) if with_parent else None
        if parent is not None:
            found.append(parent)
        with self._lock:
            for item in found:
                self._tasks.add(item)

    def busy(self) -> int:
        """How many tracked tasks are still running."""
        with self._lock:
            tasks = list(self._tasks)
        return sum(1 for task in tasks if not task.done())

    def stop_loop(self) -> bool:
        """Cancel the plugin loop's root task(s) (Ctrl-C semantics); False if no loop known."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(_cancel_roots)
        except RuntimeError:  # closed meanwhile
            return False
        return True


def _parent_task(task: asyncio.Task[object]) -> asyncio.Task[object] | None:
    """The task whose task group started the current task (anyio records it), or None if
    there is none or it is a root task."""
    try:
        import anyio

        parent_id = anyio.get_current_task().parent_id
        parents = {info.id: info.parent_id for info in anyio.get_running_tasks()}
    except Exception:
        return None
    if parent_id is None or parents.get(parent_id) is None:
        return None
    for candidate in asyncio.all_tasks():
        if id(candidate) == parent_id:
            return candidate
    return None


def _cancel_roots() -> None:
    """Runs on the plugin's loop: cancel the tasks no task group started (``anyio.run``'s)."""
    try:
        import anyio

        roots = {info.id for info in anyio.get_running_tasks() if info.parent_id is None}
    except Exception:
        roots = set()
    for task in asyncio.all_tasks():
        if id(task) in roots or not roots:
            task.cancel()
    log.info("transport.stop_requested", tasks=len(roots))


TRACKER = ConsumerTracker()
"""The transport worker's tracker (one plugin per worker process)."""

__all__ = ["TRACKER", "ConsumerTracker"]
