"""What a transport plugin still owes its chats, so a stopping worker can let it finish.

The plugin runs its own event loop on its own thread (``build_and_run``). The proxies tell
:data:`TRACKER` about the plugin's loop and about every task that consumes a run or a command
— together with the task that started it, which is where the final message is sent
(``handle_message`` consumes the run in a child task and sends the answer afterwards). On
SIGTERM the transport worker waits (bounded) until those tasks are done, then asks the loop to
stop the way Ctrl-C would: by cancelling its root task. Runs still in flight are not waited
for beyond a moment (their terminal event may be on its way): a consumer cut short while
stopping leaves its run to the supervisor, which journals the outcome for the next transport.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from takopi.logging import get_logger

log = get_logger(__name__)


@dataclass(eq=False)
class Delivery:
    """One run or command being consumed: the tasks that will send its reply."""

    tasks: list[asyncio.Task[object]]
    terminal: bool = False
    """The run's terminal event arrived: only the final message is left to send."""

    def done(self) -> bool:
        """Every task of this delivery has finished."""
        return all(task.done() for task in self.tasks)


class ConsumerTracker:
    """Tasks of the plugin's event loop that have a reply to deliver."""

    def __init__(self) -> None:
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        """Set when the worker is stopping: a consumer cut short then must not cancel its
        run (the supervisor keeps it and journals the outcome for the next transport)."""

    def note_loop(self) -> None:
        """Remember the running loop of the calling thread (the plugin's)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.loop is not loop:
            self.loop = loop

    def enter(self, *, with_parent: bool = False) -> Delivery | None:
        """The current task will deliver something; ``with_parent``: so will the task that
        started it (unless that is the loop's root task, which lives as long as the loop)."""
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return None
        if task is None:
            return None
        self.note_loop()
        found = [task]
        parent = _parent_task(task) if with_parent else None
        if parent is not None:
            found.append(parent)
        delivery = Delivery(found)
        with self._lock:
            self._deliveries = [d for d in self._deliveries if not d.done()]
            self._deliveries.append(delivery)
        return delivery

    def busy(self, *, include_open: bool = True) -> int:
        """Deliveries still going; ``include_open=False`` counts only those whose terminal
        event arrived (a run still in flight is not waited for)."""
        with self._lock:
            deliveries = list(self._deliveries)
        return sum(1 for d in deliveries if not d.done() and (include_open or d.terminal))

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

__all__ = ["TRACKER", "ConsumerTracker", "Delivery"]
