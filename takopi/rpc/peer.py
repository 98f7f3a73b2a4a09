"""One logical RPC connection; the same class serves both ends.

A Peer is bound to the asyncio loop that created it (the *peer loop*) and never touches its
socket from another thread: public coroutines awaited on another thread's loop and
``call_blocking`` hand their work to the peer loop with ``call_soon_threadsafe`` /
``run_coroutine_threadsafe``. Arguments are encoded on the caller's thread, so a callable found
in them remembers the caller's loop as its *home*: calls on it from the other side run there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.codec import EXT_BACKREF, Codec, Ref, RefDescriptor
from takopi.rpc.errors import (
    BAD_REQUEST,
    ENCODE_ERROR,
    TOO_LARGE,
    UNKNOWN_METHOD,
    UNKNOWN_REF,
    CallTimeout,
    PeerGone,
    ProtocolError,
    RemoteError,
    RpcError,
    error_from_wire,
    error_to_wire,
)
from takopi.rpc.proxy import RemoteProxy

log = get_logger("takopi.rpc")

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_BATCH = 512  # stream items per frame
_SPLIT_BYTES = 4 * 1024 * 1024  # a batch encoding larger than this is sent in smaller frames
_END = object()

SendFn = Callable[[bytes], None]
CloseCallback = Callable[["Peer", BaseException | None], Any]


@dataclass(slots=True)
class _Handler:
    fn: Callable[..., Any]
    is_async: bool
    signature: inspect.Signature | None
    loop: asyncio.AbstractEventLoop | None


@dataclass(slots=True)
class _Export:
    obj: Any
    home: asyncio.AbstractEventLoop | None
    methods: list[str]
    count: int = 0


class RawBatch:
    """Stream items still encoded, as one received frame carried them (``raw=True`` streams).

    A relay (the supervisor) forwards it by yielding it from its own stream handler: the
    producer re-emits the bytes verbatim (no decode/re-encode per item), keeping sequence
    numbers and credits. ``contains(marker)`` is a byte search, for deciding cheaply whether
    a batch needs a real decode (``items()``). The items must be values: references inside
    them belong to the original sender's peer.
    """

    __slots__ = ("_peer", "body", "count")

    def __init__(self, body: bytes, count: int, peer: Peer) -> None:
        self.body = body
        self.count = count
        self._peer = peer

    def contains(self, marker: bytes) -> bool:
        """True if ``marker`` occurs in the encoded bytes (may be a false positive)."""
        return marker in self.body

    def items(self) -> list[Any]:
        """Decode the items (``ProtocolError`` if the batch is not a list)."""
        items = self._peer._decode(self.body)
        if not isinstance(items, list):
            raise ProtocolError("stream items must be a list")
        return items

    def __repr__(self) -> str:
        return f"<RawBatch {self.count} items, {len(self.body)} bytes>"


def _array_len(body: bytes) -> int:
    """Element count of the msgpack array ``body`` starts with (``ValueError`` otherwise)."""
    if not body:
        raise ValueError("empty stream items frame")
    head = body[0]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head == 0xDC and len(body) >= 3:
        return int.from_bytes(body[1:3], "big")
    if head == 0xDD and len(body) >= 5:
        return int.from_bytes(body[1:5], "big")
    raise ValueError("stream items must be a list")


@dataclass(slots=True)
class _Producer:
    sid: int
    credit: int
    window: int = 0
    task: asyncio.Task[None] | None = None
    batch: list[Any] = field(default_factory=list)
    seq: int = 0
    flush_scheduled: bool = False
    waiter: asyncio.Future[None] | None = None
    ended: bool = False


class _Consumer:
    """Receiving side of a stream: a buffer filled on the peer loop, drained on ``home``."""

    __slots__ = (
        "credit_batch",
        "done",
        "error",
        "expected",
        "home",
        "items",
        "peer_loop",
        "raw",
        "sid",
        "unacked",
        "waiter",
    )

    def __init__(
        self,
        sid: int,
        window: int,
        home: asyncio.AbstractEventLoop,
        peer_loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.sid = sid
        self.items: deque[Any] = deque()
        self.expected = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.home = home
        self.peer_loop = peer_loop
        self.unacked = 0
        self.credit_batch = max(1, window // 4)
        self.raw = False

    # peer loop side
    def push(self, items: list[Any]) -> None:
        self.items.extend(items)
        self._wake()

    def finish(self, error: BaseException | None) -> None:
        if self.done:
            return
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        if self.home is self.peer_loop:
            if not waiter.done():
                waiter.set_result(None)
        else:
            try:
                self.home.call_soon_threadsafe(_set_if_pending, waiter)
            except RuntimeError:  # consumer's loop is closed
                pass


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _resolve(fut: asyncio.Future[Any] | concurrent.futures.Future[Any], result: Any) -> None:
    try:
        if not fut.done():
            fut.set_result(result)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass


def _reject(fut: asyncio.Future[Any] | concurrent.futures.Future[Any], exc: BaseException) -> None:
    try:
        if not fut.done():
            fut.set_exception(exc)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_method_cache: dict[type, list[str]] = {}


def _public_methods(obj: Any) -> list[str]:
    if isinstance(obj, RemoteProxy):
        return sorted(obj._rpc_methods)
    cls = type(obj)
    names = _method_cache.get(cls)
    if names is None:
        names = [
            n
            for n in dir(cls)
            if not n.startswith("_") and callable(inspect.getattr_static(cls, n, None))
        ]
        _method_cache[cls] = names
    extra = [
        n
        for n, v in getattr(obj, "__dict__", {}).items()
        if not n.startswith("_") and callable(v) and n not in names
    ]
    methods = names + extra
    if callable(obj):
        methods = [*methods, "__call__"]
    return methods


def _call_checked(
    fn: Callable[..., Any],
    signature: inspect.Signature | None,
    args: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    """``fn(*args, **kwargs)``; a TypeError from arguments that do not fit the signature
    becomes ``bad_request`` (checked only on failure: binding is too slow for every call)."""
    try:
        return fn(*args, **kwargs)
    except TypeError:
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise RemoteError(f"bad arguments: {exc}", code=BAD_REQUEST) from None
        raise


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


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
        self._loop = loop or asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()  # peers are created on their loop's thread
        self._send_raw = send
        self.info: dict[str, Any] = dict(info or {})
        self.identity = identity
        self.name = name or identity.decode("utf-8", "replace")
        self.closed = False
        self.close_reason: BaseException | None = None
        self.on_close: list[CloseCallback] = []
        self._detach: Callable[[Peer], None] | None = None
        self.max_frame_bytes = DEFAULT_MAX_FRAME_BYTES
        self._closed_event = asyncio.Event()
        self._ids = itertools.count(1)
        self._handlers: dict[str, _Handler] = {}
        self._stream_handlers: dict[str, _Handler] = {}
        self._pending: dict[int, asyncio.Future[Any] | concurrent.futures.Future[Any]] = {}
        self._incoming: dict[int, asyncio.Task[Any]] = {}
        self._producers: dict[int, _Producer] = {}
        self._consumers: dict[int, _Consumer] = {}
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._ref_lock = threading.Lock()
        self._ref_ids = itertools.count(1)
        self._exports: dict[int, _Export] = {}
        self._export_ids: dict[int, int] = {}
        self._imports: weakref.WeakValueDictionary[int, RemoteProxy] = weakref.WeakValueDictionary()
        self._callback_tasks: set[asyncio.Future[Any]] = set()
        self._releases: list[list[int]] = []
        self._release_scheduled = False
        self._codec = Codec(self._export_ref, self._import_ref)

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
        self._handlers[method] = _Handler(
            handler, inspect.iscoroutinefunction(handler), _signature(handler), loop
        )

    def register_stream(
        self,
        method: str,
        handler: Callable[..., AsyncIterator[Any]],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Serve stream ``method`` with an async generator function (or any callable returning
        an async iterable). Leaving the consumer's ``async with`` early closes it (``aclose``)."""
        self._stream_handlers[method] = _Handler(handler, False, _signature(handler), loop)

    def export(self, obj: object, *, attrs: dict[str, Any] | None = None) -> Ref:
        """Mark ``obj`` to travel by reference when passed as an argument/result/item.

        ``attrs``: plain values shipped with the reference and readable as attributes of the
        proxy (e.g. ``{"default_context": ctx}``).
        """
        return Ref(obj, attrs)

    # ------------------------------------------------------------------ calls

    def _on_peer_loop(self) -> bool:
        return _running_loop() is self._loop

    def _gone(self) -> BaseException:
        reason = self.close_reason
        if isinstance(reason, PeerGone):
            return PeerGone(reason.message)
        return PeerGone(f"peer {self.name} is gone" + (f": {reason}" if reason else ""))

    def _encode(self, obj: Any) -> bytes:
        return self._codec.encode(obj)

    async def call(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` on the other side and return its result.

        Raises :class:`RemoteError` (or a registered exception class), :class:`CallTimeout`
        after ``timeout`` seconds, :class:`PeerGone`, or ``TypeError`` for an unencodable
        argument. Cancelling the awaiting task cancels the remote handler.
        """
        return await self._call_ref(None, method, args, kwargs, timeout)

    async def call_from_thread_loop(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Like :meth:`call`, explicitly from another thread's running event loop."""
        return await self._call_ref(None, method, args, kwargs, timeout)

    def call_blocking(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call from a thread that is not the peer loop's and block until the answer."""
        return self._call_blocking(None, method, args, kwargs, timeout)

    async def _call_ref(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        if self.closed:
            raise self._gone()
        body = self._encode([list(args), kwargs])
        if self._on_peer_loop():
            return await self._request(target, method, body, timeout)
        try:
            cf = asyncio.run_coroutine_threadsafe(
                self._request(target, method, body, timeout), self._loop
            )
        except RuntimeError:
            raise self._gone() from None
        return await asyncio.wrap_future(cf)

    def _call_blocking(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        if self._on_peer_loop() or threading.get_ident() == self._loop_thread:
            raise RuntimeError("call_blocking() on the peer loop's own thread would deadlock")
        if self.closed:
            raise self._gone()
        body = self._encode([list(args), kwargs])
        try:
            cf = asyncio.run_coroutine_threadsafe(
                self._request(target, method, body, timeout), self._loop
            )
        except RuntimeError:
            raise self._gone() from None
        try:
            return cf.result()
        except concurrent.futures.CancelledError:
            raise self._gone() from None
        except BaseException:
            if not cf.done():
                cf.cancel()  # KeyboardInterrupt in the waiting thread: cancel remotely
            raise

    async def _request(
        self, target: int | None, method: str, body: bytes, timeout: float | None
    ) -> Any:
        if self.closed:
            raise self._gone()
        rid = next(self._ids)
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[rid] = fut
        timer = None
        try:
            self._send(env.pack(env.REQUEST, rid, target, method, body))
            if timeout is not None:
                timer = self._loop.call_later(timeout, self._expire, rid, method, timeout)
            return await fut
        except asyncio.CancelledError:
            if rid in self._pending and not self.closed:
                self._send_quiet(env.pack(env.CANCEL, rid))
            raise
        finally:
            self._pending.pop(rid, None)
            if timer is not None:
                timer.cancel()

    def _expire(self, rid: int, method: str, timeout: float) -> None:
        fut = self._pending.pop(rid, None)
        if fut is None:
            return
        _reject(fut, CallTimeout(f"{method!r} got no answer within {timeout:g}s"))
        self._send_quiet(env.pack(env.CANCEL, rid))

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget: the other side runs the handler, errors are only logged there."""
        await self._notify(None, method, args, kwargs)

    async def _notify(
        self, target: int | None, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.closed:
            raise self._gone()
        frame = env.pack(env.NOTIFY, target, method, self._encode([list(args), kwargs]))
        if self._on_peer_loop():
            self._send(frame)
        else:
            try:
                self._loop.call_soon_threadsafe(self._send_quiet, frame)
            except RuntimeError:  # the peer's loop is closed
                raise self._gone() from None

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip answered by the other side's **event loop**; returns seconds.

        Raises :class:`CallTimeout` (a hung or stopped process) or :class:`PeerGone`.
        """
        if not self._on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.ping(timeout), self._loop)
            return await asyncio.wrap_future(cf)
        if self.closed:
            raise self._gone()
        nonce = next(self._ids)
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pings[nonce] = fut
        start = self._loop.time()
        try:
            self._send(env.pack(env.PING, nonce))
            if timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(fut, timeout)
                except TimeoutError:
                    raise CallTimeout(f"no pong from {self.name} within {timeout:g}s") from None
        finally:
            self._pings.pop(nonce, None)
        return self._loop.time() - start

    # ------------------------------------------------------------------ streams

    def stream(self, method: str, *args: Any, window: int = 256, **kwargs: Any) -> _StreamCall:
        """Open stream ``method``: ``async with peer.stream("run", req) as items: ...``.

        Items arrive in order (checked with per-stream sequence numbers); the producer never
        has more than ``window`` items not yet consumed here. Leaving the block early cancels
        the producer (its async generator is closed). Works from any thread's event loop.
        """
        return self._stream(None, method, args, kwargs, window)

    def stream_raw(self, method: str, *args: Any, window: int = 256, **kwargs: Any) -> _StreamCall:
        """Like :meth:`stream`, but yields :class:`RawBatch` objects (items still encoded,
        one per received frame), for relaying without decoding. Use on the peer loop."""
        call = self._stream(None, method, args, kwargs, window)
        call._raw = True
        return call

    def _stream(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
    ) -> _StreamCall:
        if window < 1:
            raise ValueError("window must be >= 1")
        return _StreamCall(self, target, method, args, kwargs, window)

    def _open_stream(
        self, consumer: _Consumer, target: int | None, method: str, window: int, body: bytes
    ) -> None:
        if self.closed:
            consumer.finish(self._gone())
            return
        self._consumers[consumer.sid] = consumer
        try:
            self._send(env.pack(env.STREAM_OPEN, consumer.sid, target, method, window, body))
        except PeerGone as exc:
            self._consumers.pop(consumer.sid, None)
            consumer.finish(exc)

    def _consumer_credit(self, sid: int, n: int) -> None:
        if sid in self._consumers:
            self._send_quiet(env.pack(env.CREDIT, sid, n))

    def _consumer_cancel(self, sid: int) -> None:
        if self._consumers.pop(sid, None) is not None:
            self._send_quiet(env.pack(env.CANCEL, sid))

    # ------------------------------------------------------------------ lifecycle

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is closed; returns the reason."""
        if not self._on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.wait_closed(), self._loop)
            return await asyncio.wrap_future(cf)
        await self._closed_event.wait()
        return self.close_reason

    async def aclose(self, reason: str = "closed") -> None:
        """Say BYE and close: everything pending on both sides fails with PeerGone."""
        if not self._on_peer_loop():
            cf = asyncio.run_coroutine_threadsafe(self.aclose(reason), self._loop)
            await asyncio.wrap_future(cf)
            return
        if not self.closed:
            self._send_quiet(env.pack(env.BYE, reason))
            self.close(PeerGone(f"closed locally: {reason}"))

    def close(self, exc: BaseException | None = None) -> None:
        """Close now (any thread). Pending calls/streams fail with PeerGone; exports dropped."""
        if not self._on_peer_loop():
            self._threadsafe(self.close, exc)
            return
        if self.closed:
            return
        self.closed = True
        self.close_reason = exc or PeerGone("connection closed")
        gone = self._gone()
        for fut in list(self._pending.values()):
            _reject(fut, gone)
        self._pending.clear()
        for ping in self._pings.values():
            _reject(ping, gone)
        for task in list(self._incoming.values()):
            task.cancel()
        for prod in list(self._producers.values()):
            if prod.task is not None:
                prod.task.cancel()
        for consumer in list(self._consumers.values()):
            consumer.finish(gone)
        self._consumers.clear()
        with self._ref_lock:
            self._exports.clear()
            self._export_ids.clear()
        self._closed_event.set()
        log.debug("rpc.peer.closed", peer=self.name, reason=str(self.close_reason))
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

    def _threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: nothing left to do
            pass

    # ------------------------------------------------------------------ sending

    def _send(self, frame: bytes) -> None:
        if self.closed:
            raise self._gone()
        if len(frame) > self.max_frame_bytes:
            # The receiver's MAXMSGSIZE would drop the whole connection: fail this message only.
            raise ProtocolError(
                f"message of {len(frame)} bytes exceeds the {self.max_frame_bytes}-byte frame limit",
                code=TOO_LARGE,
            )
        self._send_raw(frame)

    def _send_quiet(self, frame: bytes) -> None:
        try:
            self._send(frame)
        except RpcError:
            pass

    def _send_error(self, rid: int, exc: BaseException) -> None:
        self._send_quiet(env.pack(env.ERROR, rid, error_to_wire(exc)))

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
        try:
            self._dispatch(msg)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            log.warning(
                "rpc.frame.malformed",
                peer=self.name,
                kind=env.KIND_NAMES.get(msg[1], msg[1]),
                error=str(exc),
            )

    def _dispatch(self, msg: list[Any]) -> None:
        kind = msg[1]
        if kind == env.RESPONSE:
            self._on_response(msg[2], msg[3])
        elif kind == env.STREAM_ITEMS:
            self._on_items(msg[2], msg[3], msg[4])
        elif kind == env.CREDIT:
            self._on_credit(msg[2], msg[3])
        elif kind == env.REQUEST:
            self._on_request(msg[2], msg[3], msg[4], msg[5])
        elif kind == env.ERROR:
            fut = self._pending.pop(msg[2], None)
            if fut is not None:
                _reject(fut, error_from_wire(msg[3]))
        elif kind == env.NOTIFY:
            self._on_notify(msg[2], msg[3], msg[4])
        elif kind == env.STREAM_OPEN:
            self._on_stream_open(msg[2], msg[3], msg[4], msg[5], msg[6])
        elif kind == env.STREAM_END:
            self._on_end(msg[2], msg[3], msg[4])
        elif kind == env.CANCEL:
            self._on_cancel(msg[2])
        elif kind == env.RELEASE:
            self._on_release(msg[2])
        elif kind == env.PING:
            self._send_quiet(env.pack(env.PONG, msg[2]))
        elif kind == env.PONG:
            ping = self._pings.get(msg[2])
            if ping is not None:
                _resolve(ping, None)
        elif kind == env.BYE:
            self.close(PeerGone(f"peer {self.name} closed the connection: {msg[2]}"))
        elif kind in (env.HELLO, env.WELCOME, env.REFUSE):
            log.warning(
                "rpc.handshake.unexpected",
                peer=self.name,
                kind=env.KIND_NAMES[kind],
                detail=str(msg[2])[:200] if kind == env.REFUSE else None,
            )
            if kind == env.HELLO:
                self._send_quiet(
                    env.pack(env.REFUSE, "already connected: a second HELLO is refused")
                )
        else:
            log.warning("rpc.frame.unknown_kind", peer=self.name, kind=kind)

    def _decode(self, body: bytes) -> Any:
        return self._codec.decode(body)

    def _on_response(self, rid: int, body: bytes) -> None:
        fut = self._pending.pop(rid, None)
        if fut is None:
            return  # cancelled or timed out meanwhile
        try:
            result = self._decode(body)
        except Exception as exc:
            _reject(fut, ProtocolError(f"undecodable response: {exc}"))
            return
        _resolve(fut, result)

    def _resolve_handler(
        self, table: dict[str, _Handler], target: Any, method: Any
    ) -> tuple[Callable[..., Any], asyncio.AbstractEventLoop | None, inspect.Signature | None]:
        if not isinstance(method, str):
            raise RemoteError("method name must be a string", code=BAD_REQUEST)
        if target is None:
            handler = table.get(method)
            if handler is None:
                raise RemoteError(f"unknown method {method!r}", code=UNKNOWN_METHOD)
            return handler.fn, handler.loop, handler.signature
        with self._ref_lock:
            exp = self._exports.get(target)
        if exp is None:
            raise RemoteError(f"no exported object with ref id {target!r}", code=UNKNOWN_REF)
        if method != "__call__" and (method.startswith("_") or method not in exp.methods):
            raise RemoteError(f"exported object has no method {method!r}", code=UNKNOWN_METHOD)
        fn = exp.obj if method == "__call__" else getattr(exp.obj, method, None)
        if fn is None or not callable(fn):
            raise RemoteError(f"exported object has no method {method!r}", code=UNKNOWN_METHOD)
        return fn, exp.home, _signature(fn)

    def _decode_args(self, body: bytes) -> tuple[list[Any], dict[str, Any]]:
        try:
            args, kwargs = self._decode(body)
        except Exception as exc:
            raise RemoteError(f"undecodable arguments: {exc}", code=BAD_REQUEST) from None
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise RemoteError("arguments must be [list, dict]", code=BAD_REQUEST)
        if any(not isinstance(k, str) for k in kwargs):
            raise RemoteError("keyword names must be strings", code=BAD_REQUEST)
        return args, kwargs

    def _on_request(self, rid: Any, target: Any, method: Any, body: Any) -> None:
        if type(rid) is not int or not isinstance(body, bytes):
            raise ValueError("malformed request")
        try:
            fn, home, sig = self._resolve_handler(self._handlers, target, method)
            args, kwargs = self._decode_args(body)
        except RemoteError as exc:
            self._send_error(rid, exc)
            return
        if home is not None and home is not self._loop:
            self._start_incoming(rid, self._run_on_home(fn, sig, args, kwargs, home))
            return
        try:
            result = _call_checked(fn, sig, args, kwargs)
        except Exception as exc:
            log.debug("rpc.handler.failed", peer=self.name, method=method, error=repr(exc))
            self._send_error(rid, exc)
            return
        if inspect.isawaitable(result):
            self._start_incoming(rid, result)
        else:
            self._respond(rid, result)

    def _start_incoming(self, rid: int, awaitable: Awaitable[Any]) -> None:
        task = self._loop.create_task(self._await_and_respond(rid, awaitable))
        self._incoming[rid] = task
        task.add_done_callback(lambda _t: self._incoming.pop(rid, None))

    async def _await_and_respond(self, rid: int, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            return  # cancelled by the caller (CANCEL) or by close(): nobody waits for an answer
        except Exception as exc:
            log.debug("rpc.handler.failed", peer=self.name, error=repr(exc))
            self._send_error(rid, exc)
            return
        self._respond(rid, result)

    def _respond(self, rid: int, result: Any) -> None:
        try:
            body = self._encode(result)
        except Exception as exc:
            log.warning("rpc.response.unencodable", peer=self.name, error=str(exc))
            self._send_error(rid, RemoteError(f"unencodable result: {exc}", code=ENCODE_ERROR))
            return
        try:
            self._send(env.pack(env.RESPONSE, rid, body))
        except ProtocolError as exc:
            self._send_error(rid, RemoteError(f"result too large: {exc.message}", code=TOO_LARGE))
        except RpcError:
            pass

    async def _run_on_home(
        self,
        fn: Callable[..., Any],
        sig: inspect.Signature | None,
        args: list[Any],
        kwargs: dict[str, Any],
        home: asyncio.AbstractEventLoop,
    ) -> Any:
        async def invoke() -> Any:
            result = _call_checked(fn, sig, args, kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        if home.is_closed() or not home.is_running():
            raise RemoteError(
                "the exported object's event loop is no longer running", code=UNKNOWN_REF
            )
        coro = invoke()
        try:
            cf = asyncio.run_coroutine_threadsafe(coro, home)
        except RuntimeError:
            coro.close()
            raise RemoteError(
                "the exported object's event loop is closed", code=UNKNOWN_REF
            ) from None
        try:
            return await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.cancel()
            raise

    def _on_notify(self, target: Any, method: Any, body: Any) -> None:
        try:
            fn, home, sig = self._resolve_handler(self._handlers, target, method)
            args, kwargs = self._decode_args(body)
        except RemoteError as exc:
            log.warning("rpc.notify.rejected", peer=self.name, method=method, error=str(exc))
            return
        if home is not None and home is not self._loop:
            self._loop.create_task(
                self._notify_task(method, self._run_on_home(fn, sig, args, kwargs, home))
            )
            return
        try:
            result = _call_checked(fn, sig, args, kwargs)
        except Exception as exc:
            log.warning("rpc.notify.failed", peer=self.name, method=method, error=repr(exc))
            return
        if inspect.isawaitable(result):
            self._loop.create_task(self._notify_task(method, result))

    async def _notify_task(self, method: Any, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            log.warning("rpc.notify.failed", peer=self.name, method=method, error=repr(exc))

    def _on_cancel(self, rid: Any) -> None:
        task = self._incoming.get(rid)
        if task is not None:
            task.cancel()
        prod = self._producers.get(rid)
        if prod is not None and prod.task is not None:
            prod.ended = True  # the consumer left: no STREAM_END
            prod.task.cancel()

    # ------------------------------------------------------------------ stream producer

    def _on_stream_open(self, sid: Any, target: Any, method: Any, window: Any, body: Any) -> None:
        if type(sid) is not int or type(window) is not int or window < 1:
            raise ValueError("malformed stream open")
        try:
            fn, home, sig = self._resolve_handler(self._stream_handlers, target, method)
            args, kwargs = self._decode_args(body)
        except RemoteError as exc:
            self._send_quiet(env.pack(env.STREAM_END, sid, 0, error_to_wire(exc)))
            return
        prod = _Producer(sid, window, window)
        self._producers[sid] = prod
        prod.task = self._loop.create_task(self._produce(prod, fn, sig, args, kwargs, home))

    async def _produce(
        self,
        prod: _Producer,
        fn: Callable[..., Any],
        sig: inspect.Signature | None,
        args: list[Any],
        kwargs: dict[str, Any],
        home: asyncio.AbstractEventLoop | None,
    ) -> None:
        iterator: Any = None
        try:
            source = _call_checked(fn, sig, args, kwargs)
            if inspect.isawaitable(source) and not hasattr(source, "__aiter__"):
                source = await source
            if not hasattr(source, "__aiter__"):
                raise RemoteError(
                    f"stream handler returned {type(source).__name__}, not an async iterable",
                    code=BAD_REQUEST,
                )
            iterator = source.__aiter__()
            if home is not None and home is not self._loop:
                iterator = _ForeignIterator(iterator, home)
            while True:
                while prod.credit <= 0:
                    self._flush(prod)
                    prod.waiter = self._loop.create_future()
                    await prod.waiter
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                if type(item) is RawBatch:
                    await self._produce_raw(prod, item)
                    continue
                prod.batch.append(item)
                prod.credit -= 1
                if len(prod.batch) >= MAX_BATCH:
                    self._flush(prod)
                elif not prod.flush_scheduled:
                    prod.flush_scheduled = True
                    self._loop.call_soon(self._scheduled_flush, prod)
            self._flush(prod)
            if not prod.ended:
                prod.ended = True
                self._send_quiet(env.pack(env.STREAM_END, prod.sid, prod.seq, None))
        except asyncio.CancelledError:
            pass  # consumer left or connection closed
        except Exception as exc:
            if not prod.ended:
                try:
                    self._flush(prod)
                except Exception:
                    pass
                prod.ended = True
                self._send_quiet(env.pack(env.STREAM_END, prod.sid, prod.seq, error_to_wire(exc)))
        finally:
            self._producers.pop(prod.sid, None)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except BaseException as exc:
                    log.debug("rpc.stream.aclose_failed", peer=self.name, error=repr(exc))

    async def _wait_credit(self, prod: _Producer, n: int) -> None:
        """Flush what is batched, then wait until ``n`` items may be sent."""
        self._flush(prod)
        while prod.credit < n:
            prod.waiter = self._loop.create_future()
            await prod.waiter

    async def _produce_raw(self, prod: _Producer, raw: RawBatch) -> None:
        """Re-emit a relayed batch verbatim (its own frame), within the consumer's window."""
        # The consumer returns credit in chunks of window // 4, so only this much is sure to
        # come back while it waits: a larger batch is decoded and sent in smaller frames.
        limit = prod.window - max(1, prod.window // 4) + 1
        if raw.count > limit:
            items = raw.items()
            for i in range(0, len(items), limit):
                chunk = items[i : i + limit]
                await self._wait_credit(prod, len(chunk))
                if prod.ended:
                    return
                self._send_items(prod, chunk)
                prod.credit -= len(chunk)
            return
        await self._wait_credit(prod, raw.count)
        if prod.ended or raw.count == 0:
            return
        frame = env.pack(env.STREAM_ITEMS, prod.sid, prod.seq, raw.body)
        try:
            self._send(frame)
        except ProtocolError as exc:
            raise RemoteError(f"stream item too large: {exc.message}", code=TOO_LARGE) from None
        prod.seq += raw.count
        prod.credit -= raw.count

    def _scheduled_flush(self, prod: _Producer) -> None:
        prod.flush_scheduled = False
        try:
            self._flush(prod)
        except Exception as exc:
            if not prod.ended:
                prod.ended = True
                self._send_quiet(env.pack(env.STREAM_END, prod.sid, prod.seq, error_to_wire(exc)))
            if prod.task is not None:
                prod.task.cancel()

    def _flush(self, prod: _Producer) -> None:
        if not prod.batch or prod.ended:
            prod.batch.clear()
            return
        items, prod.batch = prod.batch, []
        self._send_items(prod, items)

    def _send_items(self, prod: _Producer, items: list[Any]) -> None:
        try:
            body = self._encode(items)
        except TypeError as exc:
            raise RemoteError(f"unencodable stream item: {exc}", code=ENCODE_ERROR) from None
        if len(body) > _SPLIT_BYTES and len(items) > 1:
            half = len(items) // 2  # keep frames well under the receiver's size limit
            self._send_items(prod, items[:half])
            self._send_items(prod, items[half:])
            return
        frame = env.pack(env.STREAM_ITEMS, prod.sid, prod.seq, body)
        try:
            self._send(frame)
        except ProtocolError as exc:
            raise RemoteError(f"stream item too large: {exc.message}", code=TOO_LARGE) from None
        prod.seq += len(items)

    def _on_credit(self, sid: Any, n: Any) -> None:
        prod = self._producers.get(sid)
        if prod is None or type(n) is not int or n < 1:
            return
        prod.credit += n
        if prod.waiter is not None and not prod.waiter.done():
            prod.waiter.set_result(None)

    # ------------------------------------------------------------------ stream consumer

    def _on_items(self, sid: Any, first: Any, body: Any) -> None:
        consumer = self._consumers.get(sid)
        if consumer is None:
            return  # the consumer left; CANCEL is on its way
        if first != consumer.expected:
            self._consumers.pop(sid, None)
            self._send_quiet(env.pack(env.CANCEL, sid))
            consumer.finish(
                ProtocolError(f"stream item {first} arrived, expected {consumer.expected}")
            )
            return
        try:
            if consumer.raw:
                if not isinstance(body, bytes):
                    raise TypeError("stream items must be bytes")
                count = _array_len(body)
                consumer.expected += count
                consumer.push([RawBatch(body, count, self)])
                return
            items = self._decode(body)
            if not isinstance(items, list):
                raise TypeError("stream items must be a list")
        except Exception as exc:
            self._consumers.pop(sid, None)
            self._send_quiet(env.pack(env.CANCEL, sid))
            consumer.finish(ProtocolError(f"undecodable stream items: {exc}"))
            return
        consumer.expected += len(items)
        consumer.push(items)

    def _on_end(self, sid: Any, count: Any, error: Any) -> None:
        consumer = self._consumers.pop(sid, None)
        if consumer is None:
            return
        if error is not None:
            consumer.finish(error_from_wire(error))
        elif count != consumer.expected:
            consumer.finish(
                ProtocolError(f"stream ended after {count} items, received {consumer.expected}")
            )
        else:
            consumer.finish(None)

    # ------------------------------------------------------------------ references

    def _export_ref(self, obj: Any) -> RefDescriptor:
        attrs: dict[str, Any] | None = None
        if isinstance(obj, Ref):
            attrs, obj = obj.attrs, obj.obj
        if isinstance(obj, RemoteProxy) and obj._rpc_peer is self:
            return RefDescriptor(True, obj._rpc_ref)
        home = _running_loop()
        if home is self._loop:
            home = None
        with self._ref_lock:
            ref_id = self._export_ids.get(id(obj))
            exp = self._exports.get(ref_id) if ref_id is not None else None
            if exp is None:
                ref_id = next(self._ref_ids)
                exp = _Export(obj, home, _public_methods(obj))
                self._exports[ref_id] = exp
                self._export_ids[id(obj)] = ref_id
            exp.count += 1
        if attrs is None:
            names = getattr(type(obj), "__rpc_attrs__", ())
            attrs = {n: getattr(obj, n, None) for n in names} if names else {}
        return RefDescriptor(False, [ref_id, exp.methods, attrs])

    def _import_ref(self, code: int, payload: Any) -> Any:
        if code == EXT_BACKREF:
            with self._ref_lock:
                exp = self._exports.get(payload)
            if exp is None:
                raise TypeError(f"reference {payload!r} came home but is no longer exported")
            return exp.obj
        ref_id, methods, attrs = payload
        if type(ref_id) is not int or not isinstance(methods, list):
            raise TypeError("malformed reference")
        with self._ref_lock:
            proxy = self._imports.get(ref_id)
            if proxy is None:
                proxy = RemoteProxy(self, ref_id, frozenset(methods), dict(attrs or {}))
                self._imports[ref_id] = proxy
                fin = weakref.finalize(proxy, self._release, ref_id, proxy._rpc_count)
                fin.atexit = False
            proxy._rpc_count[0] += 1
        return proxy

    def _release(self, ref_id: int, count: list[int]) -> None:
        # Runs wherever the proxy was garbage-collected (any thread).
        if self.closed or count[0] <= 0:
            return
        self._releases.append([ref_id, count[0]])
        if not self._release_scheduled:
            self._release_scheduled = True
            self._threadsafe(self._flush_releases)

    def _flush_releases(self) -> None:
        self._release_scheduled = False
        batch, self._releases = self._releases, []
        if batch and not self.closed:
            self._send_quiet(env.pack(env.RELEASE, batch))

    def _on_release(self, batch: Any) -> None:
        with self._ref_lock:
            for ref_id, count in batch:
                exp = self._exports.get(ref_id)
                if exp is None:
                    continue
                exp.count -= count
                if exp.count <= 0:
                    del self._exports[ref_id]
                    self._export_ids.pop(id(exp.obj), None)

    @property
    def exported_count(self) -> int:
        """How many local objects the other side currently holds references to."""
        with self._ref_lock:
            return len(self._exports)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Peer {self.name} {state}>"


class _ForeignIterator:
    """Iterate an async iterator that belongs to another thread's loop, from the peer loop."""

    def __init__(self, it: Any, home: asyncio.AbstractEventLoop) -> None:
        self._it = it
        self._home = home

    async def _on_home(self, coro: Any) -> Any:
        try:
            cf = asyncio.run_coroutine_threadsafe(coro, self._home)
        except RuntimeError:
            coro.close()
            raise RemoteError("the stream's event loop is closed", code=UNKNOWN_REF) from None
        try:
            return await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.cancel()
            raise

    async def __anext__(self) -> Any:
        return await self._on_home(self._it.__anext__())

    async def aclose(self) -> None:
        aclose = getattr(self._it, "aclose", None)
        if aclose is not None and not self._home.is_closed():
            await self._on_home(aclose())


class _StreamCall:
    """``async with peer.stream(...) as items``: the consumer side of one stream."""

    def __init__(
        self,
        peer: Peer,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
    ) -> None:
        self._peer = peer
        self._target = target
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._window = window
        self._consumer: _Consumer | None = None
        self._foreign = False
        self._raw = False

    async def __aenter__(self) -> _StreamCall:
        peer = self._peer
        if peer.closed:
            raise peer._gone()
        home = asyncio.get_running_loop()
        body = peer._encode([list(self._args), self._kwargs])
        consumer = _Consumer(next(peer._ids), self._window, home, peer._loop)
        consumer.raw = self._raw
        self._consumer = consumer
        self._foreign = home is not peer._loop
        if self._foreign:
            try:
                peer._loop.call_soon_threadsafe(
                    peer._open_stream, consumer, self._target, self._method, self._window, body
                )
            except RuntimeError:  # the peer's loop is closed
                raise peer._gone() from None
        else:
            peer._open_stream(consumer, self._target, self._method, self._window, body)
        return self

    def __aiter__(self) -> _StreamCall:
        return self

    async def __anext__(self) -> Any:
        c = self._consumer
        if c is None:
            raise RuntimeError("use 'async with peer.stream(...) as items'")
        while True:
            if c.items:
                item = c.items.popleft()
                c.unacked += item.count if c.raw else 1
                if c.unacked >= c.credit_batch and not c.done:
                    n, c.unacked = c.unacked, 0
                    if self._foreign:
                        self._peer._threadsafe(self._peer._consumer_credit, c.sid, n)
                    else:
                        self._peer._consumer_credit(c.sid, n)
                return item
            if c.done:
                if c.error is not None:
                    raise c.error
                raise StopAsyncIteration
            waiter: asyncio.Future[None] = c.home.create_future()
            c.waiter = waiter
            if not c.items and not c.done:
                await waiter
            c.waiter = None

    async def __aexit__(self, *exc_info: object) -> None:
        c = self._consumer
        if c is None or c.done:
            return
        c.done = True
        if self._foreign:
            self._peer._threadsafe(self._peer._consumer_cancel, c.sid)
        else:
            self._peer._consumer_cancel(c.sid)


__all__ = ["MAX_BATCH", "Peer", "RawBatch"]
