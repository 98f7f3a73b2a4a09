"""One logical RPC connection; the same class serves both ends.

A Peer is bound to the asyncio loop that created it (the *peer loop*) and never touches its
socket from another thread: public coroutines awaited on another thread's loop and
``call_blocking`` hand their work to the peer loop with ``call_soon_threadsafe`` /
``run_coroutine_threadsafe``. Arguments are encoded on the caller's thread, so a callable found
in them remembers the caller's loop as its *home*: calls on it from the other side run there.

The Peer is a facade over its parts: :class:`~takopi.rpc.link.Link` (loop, codec, send),
:class:`~takopi.rpc.calls.Calls` (requests, notifications, pings),
:class:`~takopi.rpc.streams.Streams` (flow-controlled streams) and
:class:`~takopi.rpc.refs.Refs` (objects passed by reference). It dispatches inbound frames to
them and closes them together.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.calls import Calls
from takopi.rpc.codec import Codec, Ref
from takopi.rpc.errors import PeerGone
from takopi.rpc.handlers import HandlerTable
from takopi.rpc.link import DEFAULT_MAX_FRAME_BYTES, Link, SendFn
from takopi.rpc.refs import Refs
from takopi.rpc.streams import MAX_BATCH, RawBatch, StreamCall, Streams

log = get_logger("takopi.rpc")

CloseCallback = Callable[["Peer", BaseException | None], Any]


class Peer:
    """One logical connection: calls, notifications, streams, references and ping.

    Created by the endpoints (:class:`~takopi.rpc.endpoint.RouterEndpoint` on the supervisor,
    :class:`~takopi.rpc.endpoint.DealerEndpoint` on a worker); ``info`` is the handshake dict
    of the other side (the worker's HELLO without its secret, or the supervisor's WELCOME).
    """

    def __init__(
        self,
        send: SendFn,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        info: dict[str, Any] | None = None,
        identity: bytes = b"",
        name: str = "",
    ) -> None:
        self.info: dict[str, Any] = dict(info or {})
        self.identity = identity
        self.name = name or identity.decode("utf-8", "replace")
        self.on_close: list[CloseCallback] = []
        self._detach: Callable[[Peer], None] | None = None
        link = Link(send, loop or asyncio.get_running_loop(), self.name)
        self._link = link
        self._refs = Refs(link, self)
        link.codec = Codec(self._refs.export_ref, self._refs.import_ref)
        ids = itertools.count(1)  # request, stream and ping ids share one sequence
        self._handlers = HandlerTable(self._refs)
        self._calls = Calls(link, self._handlers, ids)
        self._streams = Streams(link, self._handlers, ids)
        self._closed_event = asyncio.Event()
        self._callback_tasks: set[asyncio.Future[Any]] = set()
        self._dispatch: dict[int, Callable[[list[Any]], None]] = {
            env.RESPONSE: self._calls.on_response,
            env.STREAM_ITEMS: self._streams.on_items,
            env.CREDIT: self._streams.on_credit,
            env.REQUEST: self._calls.on_request,
            env.ERROR: self._calls.on_error,
            env.NOTIFY: self._calls.on_notify,
            env.STREAM_OPEN: self._streams.on_open,
            env.STREAM_END: self._streams.on_end,
            env.CANCEL: self._on_cancel,
            env.RELEASE: self._refs.on_release,
            env.PING: self._calls.on_ping,
            env.PONG: self._calls.on_pong,
            env.BYE: self._on_bye,
            env.HELLO: self._on_handshake_frame,
            env.WELCOME: self._on_handshake_frame,
            env.REFUSE: self._on_handshake_frame,
        }

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (nothing can be sent any more)."""
        return self._link.closed

    @property
    def close_reason(self) -> BaseException | None:
        """Why the connection closed (a :class:`PeerGone` usually)."""
        return self._link.close_reason

    @property
    def max_frame_bytes(self) -> int:
        """Largest frame this side sends (a larger one fails alone with ``too_large``)."""
        return self._link.max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        self._link.max_frame_bytes = value

    @property
    def exported_count(self) -> int:
        """How many local objects the other side currently holds references to."""
        return len(self._refs)

    # ------------------------------------------------------------------ registration

    def register(
        self,
        method: str,
        handler: Callable[..., Awaitable[Any] | Any],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Serve ``method`` with ``handler`` (sync handlers run inline on the peer loop).

        ``loop``: run the handler on that (other thread's) event loop instead.
        """
        self._handlers.register(method, handler, loop=loop)

    def register_stream(
        self,
        method: str,
        handler: Callable[..., AsyncIterator[Any]],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Serve stream ``method`` with an async generator function (or any callable returning
        an async iterable). Leaving the consumer's ``async with`` early closes it (``aclose``)."""
        self._handlers.register(method, handler, stream=True, loop=loop)

    def export(self, obj: object, *, attrs: dict[str, Any] | None = None) -> Ref:
        """Mark ``obj`` to travel by reference when passed as an argument/result/item.

        ``attrs``: plain values shipped with the reference and readable as attributes of the
        proxy (e.g. ``{"default_context": ctx}``).
        """
        return Ref(obj, attrs)

    # ------------------------------------------------------------------ calls

    async def call(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` on the other side and return its result (from any thread's loop).

        Raises :class:`RemoteError` (or a registered exception class), :class:`CallTimeout`
        after ``timeout`` seconds, :class:`PeerGone`, or ``TypeError`` for an unencodable
        argument. Cancelling the awaiting task cancels the remote handler.
        """
        return await self._calls.call(None, method, args, kwargs, timeout)

    call_from_thread_loop = call
    """Same as :meth:`call` (kept for callers that say where they call from)."""

    def call_blocking(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call from a thread that is not the peer loop's and block until the answer."""
        return self._calls.call_blocking(None, method, args, kwargs, timeout)

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget: the other side runs the handler, errors are only logged there."""
        await self._calls.notify(None, method, args, kwargs)

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip answered by the other side's **event loop**; returns seconds.

        Raises :class:`CallTimeout` (a hung or stopped process) or :class:`PeerGone`.
        """
        if not self._link.on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.ping(timeout), self._link.loop)
            return await asyncio.wrap_future(cf)
        return await self._calls.ping(timeout)

    # The proxy-facing half (see takopi.rpc.proxy.RefCaller): ``target`` is a ref id.
    def _call_ref(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Awaitable[Any]:
        return self._calls.call(target, method, args, kwargs, timeout)

    def _call_blocking(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        return self._calls.call_blocking(target, method, args, kwargs, timeout)

    async def _notify(
        self, target: int | None, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        await self._calls.notify(target, method, args, kwargs)

    def _stream(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
    ) -> StreamCall:
        return self._streams.open(target, method, args, kwargs, window)

    # ------------------------------------------------------------------ streams

    def stream(self, method: str, *args: Any, window: int = 256, **kwargs: Any) -> StreamCall:
        """Open stream ``method``: ``async with peer.stream("run", req) as items: ...``.

        Items arrive in order (checked with per-stream sequence numbers); the producer never
        has more than ``window`` items not yet consumed here. Leaving the block early cancels
        the producer (its async generator is closed). Works from any thread's event loop.
        """
        return self._streams.open(None, method, args, kwargs, window)

    def stream_raw(self, method: str, *args: Any, window: int = 256, **kwargs: Any) -> StreamCall:
        """Like :meth:`stream`, but yields :class:`RawBatch` objects (items still encoded,
        one per received frame), for relaying without decoding. Use on the peer loop."""
        return self._streams.open(None, method, args, kwargs, window, raw=True)

    # ------------------------------------------------------------------ lifecycle

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is closed; returns the reason."""
        if not self._link.on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.wait_closed(), self._link.loop)
            return await asyncio.wrap_future(cf)
        await self._closed_event.wait()
        return self.close_reason

    async def aclose(self, reason: str = "closed") -> None:
        """Say BYE and close: everything pending on both sides fails with PeerGone."""
        if not self._link.on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.aclose(reason), self._link.loop)
            await asyncio.wrap_future(cf)
            return
        if not self.closed:
            self._link.send_quiet(env.pack(env.BYE, reason))
            self.close(PeerGone(f"closed locally: {reason}"))

    def close(self, exc: BaseException | None = None) -> None:
        """Close now (any thread). Pending calls/streams fail with PeerGone; exports dropped."""
        link = self._link
        if not link.on_peer_loop():
            link.threadsafe(self.close, exc)
            return
        if link.closed:
            return
        link.closed = True
        link.close_reason = exc or PeerGone("connection closed")
        gone = link.gone()
        self._calls.close(gone)
        self._streams.close(gone)
        self._refs.clear()
        self._closed_event.set()
        log.debug("rpc.peer.closed", peer=self.name, reason=str(link.close_reason))
        if self._detach is not None:
            try:
                self._detach(self)
            except Exception:
                log.exception("rpc.peer.detach_failed", peer=self.name)
        for cb in list(self.on_close):
            try:
                result = cb(self, exc)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._callback_tasks.add(task)
                    task.add_done_callback(self._callback_tasks.discard)
            except Exception:
                log.exception("rpc.peer.on_close_failed", peer=self.name)

    # ------------------------------------------------------------------ receiving

    def _receive(self, frame: bytes) -> None:
        """Dispatch one inbound frame (peer loop). Never raises."""
        try:
            msg = env.unpack(frame)
        except ValueError as exc:
            log.warning("rpc.frame.garbage", peer=self.name, error=str(exc))
            return
        if msg[0] != env.PROTOCOL_VERSION:
            log.warning("rpc.frame.bad_version", peer=self.name, version=msg[0])
            return
        handler = self._dispatch.get(msg[1])
        if handler is None:
            log.warning("rpc.frame.unknown_kind", peer=self.name, kind=msg[1])
            return
        try:
            handler(msg)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            log.warning(
                "rpc.frame.malformed",
                peer=self.name,
                kind=env.KIND_NAMES.get(msg[1], msg[1]),
                error=str(exc),
            )

    def _on_cancel(self, msg: list[Any]) -> None:
        # The id names a request we serve or a stream we produce (one id sequence per side).
        rid = msg[2]
        self._calls.cancel_incoming(rid)
        self._streams.cancel_producer(rid)

    def _on_bye(self, msg: list[Any]) -> None:
        self.close(PeerGone(f"peer {self.name} closed the connection: {msg[2]}"))

    def _on_handshake_frame(self, msg: list[Any]) -> None:
        kind = msg[1]
        log.warning(
            "rpc.handshake.unexpected",
            peer=self.name,
            kind=env.KIND_NAMES[kind],
            detail=str(msg[2])[:200] if kind == env.REFUSE else None,
        )
        if kind == env.HELLO:
            self._link.send_quiet(
                env.pack(env.REFUSE, "already connected: a second HELLO is refused")
            )

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Peer {self.name} {state}>"


__all__ = ["DEFAULT_MAX_FRAME_BYTES", "MAX_BATCH", "Peer", "RawBatch", "StreamCall"]
