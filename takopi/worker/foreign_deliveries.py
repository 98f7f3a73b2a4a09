"""Journaled outcomes delivered on behalf of third-party transport plugins.

When a transport worker dies mid-run, the run goes on and the supervisor journals its outcome;
the restarted transport must deliver it. takopi's own transports ask for pending deliveries
themselves (``runtime.pending_deliveries`` / ``ack_delivery``). A published transport plugin
knows nothing of the journal, so its worker delivers for it:

- through the plugin's own ``Transport`` and ``Presenter`` — the ones it hands to takopi's
  ``ExecBridgeConfig`` (seen through :mod:`takopi.bridge_hooks`), rendered with
  ``presenter.render_final`` like any final message of that transport;
- on the plugin's own event loop, because its clients (HTTP pools, outboxes) belong to that
  loop. The loop is noticed when the plugin thread creates it (an event-loop policy that only
  watches that thread), or, failing that, when an ``ExecBridgeConfig`` is built inside it;
- at start and then every :data:`DELIVERY_POLL_S` seconds (a run can finish after the restart),
  each record acknowledged once the plugin's transport accepted it (a failed send is retried).

A plugin written for this takopi may take pending deliveries itself; the first time its own
code calls ``runtime.pending_deliveries()`` this relay steps aside for good, so nothing is
delivered twice.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import warnings
from collections.abc import Callable
from typing import Any

from takopi.bridge_hooks import observe_exec_configs
from takopi.bridge_render import render_final_safely
from takopi.logging import get_logger
from takopi.plugins import CORE_DISTRIBUTION, TRANSPORT_GROUP, canonicalize_name
from takopi.progress import ProgressState
from takopi.protocol import Delivery
from takopi.transport import MessageRef, SendOptions

log = get_logger(__name__)

DELIVERY_POLL_S = 3.0
"""Seconds between two looks at the journal once the plugin's transport is known."""
_CONFIG_WAIT_S = 0.2


def is_third_party(plugin_id: str) -> bool:
    """Whether the transport ``plugin_id`` comes from another distribution than takopi."""
    from takopi.plugins import find_entrypoint

    try:
        ep = find_entrypoint(TRANSPORT_GROUP, plugin_id)
    except LookupError:
        return False
    return canonicalize_name(ep.distribution or "") != CORE_DISTRIBUTION


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _render(delivery: Delivery, presenter: Any) -> Any:
    state = ProgressState(
        engine=delivery.engine or "?",
        action_count=0,
        actions=(),
        resume=None,
        resume_line=delivery.resume_line,
        context_line=delivery.context_line,
    )
    return render_final_safely(
        presenter, state, elapsed_s=0.0, status=delivery.status, answer=delivery.body or ""
    )


async def deliver_through(
    runtime: Any,
    transport: Any,
    presenter: Any,
    *,
    pending: Callable[[], Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Send every pending journaled outcome through ``transport``; returns how many went.

    ``pending`` lists them (default ``runtime.pending_deliveries``); ``stop()`` true ends the
    round before the next send.
    """
    try:
        records = await _maybe_await((pending or runtime.pending_deliveries)())
    except Exception as exc:
        log.warning("foreign_deliveries.list_failed", error=str(exc))
        return 0
    sent = 0
    for record in records or ():
        if stop():
            break
        delivery = Delivery.from_record(record)
        delivery_id = delivery.delivery_id
        channel_id = delivery.channel_id
        if channel_id is None:
            log.warning("foreign_deliveries.bad_record", delivery_id=delivery_id)
            await _maybe_await(runtime.ack_delivery(delivery_id))  # undeliverable: drop it
            continue
        message_id = delivery.message_id
        progress_id = delivery.progress_message_id
        thread_id = delivery.thread_id
        options = SendOptions(
            reply_to=MessageRef(channel_id, message_id, thread_id=thread_id)
            if message_id is not None
            else None,
            notify=True,
            replace=MessageRef(channel_id, progress_id, thread_id=thread_id)
            if progress_id is not None
            else None,
            thread_id=thread_id,
        )
        try:
            ref = await transport.send(
                channel_id=channel_id, message=_render(delivery, presenter), options=options
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("foreign_deliveries.send_failed", delivery_id=delivery_id, error=str(exc))
            continue
        if ref is None:
            continue
        try:
            await _maybe_await(runtime.ack_delivery(delivery_id))
        except Exception as exc:
            log.warning("foreign_deliveries.ack_failed", delivery_id=delivery_id, error=str(exc))
            continue
        sent += 1
        log.info("foreign_deliveries.sent", delivery_id=delivery_id)
    return sent


def _loop_watching_policy(
    thread: Callable[[], threading.Thread | None],
    on_loop: Callable[[asyncio.AbstractEventLoop], None],
) -> Any:
    """The default event-loop policy, also reporting loops created on ``thread``; None where
    policies no longer exist (deprecated in Python 3.14, to be removed in 3.16)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        base = getattr(asyncio, "DefaultEventLoopPolicy", None)
    if base is None:
        return None

    class LoopWatchingPolicy(base):  # type: ignore[misc,valid-type]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop: asyncio.AbstractEventLoop = super().new_event_loop()
            if threading.current_thread() is thread():
                on_loop(loop)
            return loop

    return LoopWatchingPolicy()


class ForeignDeliveries:
    """Delivers journaled outcomes for the third-party transport of this worker."""

    def __init__(self, runtime: Any, plugin_thread: Callable[[], threading.Thread | None]) -> None:
        self.runtime = runtime
        self._plugin_thread = plugin_thread
        self._config: Any = None
        self._loops: set[asyncio.AbstractEventLoop] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: Callable[[], Any] = runtime.pending_deliveries
        self.plugin_delivers = False

    def install(self) -> Callable[[], None]:
        """Watch for the plugin's ``ExecBridgeConfig`` and for loops its thread creates, and
        for the plugin asking for pending deliveries itself; returns an undo."""
        own = self._pending

        def pending_deliveries() -> Any:
            if not self.plugin_delivers:
                log.info("foreign_deliveries.plugin_delivers_itself")
            self.plugin_delivers = True
            return own()

        self.runtime.pending_deliveries = pending_deliveries
        unobserve = observe_exec_configs(self._note_config)
        policy = _loop_watching_policy(self._plugin_thread, self._loop_created)
        previous = None
        if policy is not None:  # else: only loops an ExecBridgeConfig is built in are seen
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                previous = asyncio.get_event_loop_policy()
                asyncio.set_event_loop_policy(policy)

        def undo() -> None:
            unobserve()
            self.runtime.pending_deliveries = own
            if previous is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    asyncio.set_event_loop_policy(previous)

        return undo

    def _note_config(self, cfg: Any) -> None:
        if threading.current_thread() is not self._plugin_thread():
            return
        self._config = cfg
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop not in self._loops:  # a loop the policy did not see (a custom loop factory)
            self._start_on(loop)

    def _loop_created(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon(self._start_on, loop)

    def _start_on(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop in self._loops:
            return
        self._loops.add(loop)
        task = loop.create_task(self._run(), name="takopi-foreign-deliveries")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while self._config is None:
            await asyncio.sleep(_CONFIG_WAIT_S)
        while not self.plugin_delivers:
            cfg = self._config
            await deliver_through(
                self.runtime,
                cfg.transport,
                cfg.presenter,
                pending=self._pending,
                stop=lambda: self.plugin_delivers,
            )
            await asyncio.sleep(DELIVERY_POLL_S)


__all__ = ["DELIVERY_POLL_S", "ForeignDeliveries", "deliver_through", "is_third_party"]
