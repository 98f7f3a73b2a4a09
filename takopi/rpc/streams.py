"""Streams of one connection: ordered items with per-stream sequence numbers and credit-based
flow control (the producer never has more than ``window`` items not yet consumed).

Producer side: a task iterates the handler's async iterator, batches items (up to
:data:`MAX_BATCH` per frame, flushed on the next loop iteration) and waits for CREDIT when
the window is used up. Consumer side: a buffer filled on the peer loop and drained on the
consumer's own loop (any thread), which returns credit in quarters of the window.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.errors import (
    BAD_REQUEST,
    ENCODE_ERROR,
    TOO_LARGE,
    UNKNOWN_REF,
    PeerGone,
    ProtocolError,
    RemoteError,
    error_from_wire,
    error_to_wire,
)
from takopi.rpc.handlers import HandlerTable, call_checked, decode_args
from takopi.rpc.link import Link

log = get_logger("takopi.rpc")

MAX_BATCH = 512  # stream items per frame
_SPLIT_BYTES = 4 * 1024 * 1024  # a batch encoding larger than this is sent in smaller frames


class RawBatch:
    """Stream items still encoded, as one received frame carried them (``raw=True`` streams).

    A relay (the supervisor) forwards it by yielding it from its own stream handler: the
    producer re-emits the bytes verbatim (no decode/re-encode per item), keeping sequence
    numbers and credits. ``contains(marker)`` is a byte search, for deciding cheaply whether
    a batch needs a real decode (``items()``). The items must be values: references inside
    them belong to the original sender's peer.
    """

    __slots__ = ("_decode", "body", "count")

    def __init__(self, body: bytes, count: int, decode: Callable[[bytes], Any]) -> None:
        self.body = body
        self.count = count
        self._decode = decode

    def contains(self, marker: bytes) -> bool:
        """True if ``marker`` occurs in the encoded bytes (may be a false positive)."""
        return marker in self.body

    def items(self) -> list[Any]:
        """Decode the items (``ProtocolError`` if the batch is not a list)."""
        items = self._decode(self.body)
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


class Streams:
    """Both sides of every stream of one connection."""

    def __init__(self, link: Link, handlers: HandlerTable, ids: Iterator[int]) -> None:
        self._link = link
        self._handlers = handlers
        self._ids = ids
        self.producers: dict[int, _Producer] = {}
        self.consumers: dict[int, _Consumer] = {}

    def open(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
        *,
        raw: bool = False,
    ) -> StreamCall:
        """A stream call, opened when its ``async with`` is entered."""
        if window < 1:
            raise ValueError("window must be >= 1")
        return StreamCall(self, target, method, args, kwargs, window, raw=raw)

    # ------------------------------------------------------------------ consumer (peer loop)

    def _open_stream(
        self, consumer: _Consumer, target: int | None, method: str, window: int, body: bytes
    ) -> None:
        link = self._link
        if link.closed:
            consumer.finish(link.gone())
            return
        self.consumers[consumer.sid] = consumer
        try:
            link.send(env.pack(env.STREAM_OPEN, consumer.sid, target, method, window, body))
        except PeerGone as exc:
            self.consumers.pop(consumer.sid, None)
            consumer.finish(exc)

    def _consumer_credit(self, sid: int, n: int) -> None:
        if sid in self.consumers:
            self._link.send_quiet(env.pack(env.CREDIT, sid, n))

    def _consumer_cancel(self, sid: int) -> None:
        if self.consumers.pop(sid, None) is not None:
            self._link.send_quiet(env.pack(env.CANCEL, sid))

    def on_items(self, msg: list[Any]) -> None:
        """STREAM_ITEMS id, first_seq, body."""
        sid, first, body = msg[2], msg[3], msg[4]
        consumer = self.consumers.get(sid)
        if consumer is None:
            return  # the consumer left; CANCEL is on its way
        link = self._link
        if first != consumer.expected:
            self.consumers.pop(sid, None)
            link.send_quiet(env.pack(env.CANCEL, sid))
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
                consumer.push([RawBatch(body, count, link.decode)])
                return
            items = link.decode(body)
            if not isinstance(items, list):
                raise TypeError("stream items must be a list")
        except Exception as exc:
            self.consumers.pop(sid, None)
            link.send_quiet(env.pack(env.CANCEL, sid))
            consumer.finish(ProtocolError(f"undecodable stream items: {exc}"))
            return
        consumer.expected += len(items)
        consumer.push(items)

    def on_end(self, msg: list[Any]) -> None:
        """STREAM_END id, item_count, error."""
        sid, count, error = msg[2], msg[3], msg[4]
        consumer = self.consumers.pop(sid, None)
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

    # ------------------------------------------------------------------ producer

    def on_open(self, msg: list[Any]) -> None:
        """STREAM_OPEN id, target, method, window, body: start producing."""
        sid, target, method, window, body = msg[2], msg[3], msg[4], msg[5], msg[6]
        if type(sid) is not int or type(window) is not int or window < 1:
            raise ValueError("malformed stream open")
        link = self._link
        try:
            fn, home, sig = self._handlers.resolve(target, method, stream=True)
            args, kwargs = decode_args(link.decode, body)
        except RemoteError as exc:
            link.send_quiet(env.pack(env.STREAM_END, sid, 0, error_to_wire(exc)))
            return
        prod = _Producer(sid, window, window)
        self.producers[sid] = prod
        prod.task = link.loop.create_task(self._produce(prod, fn, sig, args, kwargs, home))

    def cancel_producer(self, sid: Any) -> None:
        """CANCEL of a stream we produce: the consumer left (no STREAM_END follows)."""
        prod = self.producers.get(sid)
        if prod is not None and prod.task is not None:
            prod.ended = True
            prod.task.cancel()

    async def _produce(
        self,
        prod: _Producer,
        fn: Callable[..., Any],
        sig: inspect.Signature | None,
        args: list[Any],
        kwargs: dict[str, Any],
        home: asyncio.AbstractEventLoop | None,
    ) -> None:
        link = self._link
        loop = link.loop
        iterator: Any = None
        try:
            source = call_checked(fn, sig, args, kwargs)
            if inspect.isawaitable(source) and not hasattr(source, "__aiter__"):
                source = await source
            if not hasattr(source, "__aiter__"):
                raise RemoteError(
                    f"stream handler returned {type(source).__name__}, not an async iterable",
                    code=BAD_REQUEST,
                )
            iterator = source.__aiter__()
            if home is not None and home is not loop:
                iterator = _ForeignIterator(iterator, home)
            while True:
                while prod.credit <= 0:
                    self._flush(prod)
                    prod.waiter = loop.create_future()
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
                    loop.call_soon(self._scheduled_flush, prod)
            self._flush(prod)
            if not prod.ended:
                prod.ended = True
                link.send_quiet(env.pack(env.STREAM_END, prod.sid, prod.seq, None))
        except asyncio.CancelledError:
            pass  # consumer left or connection closed
        except Exception as exc:
            if not prod.ended:
                try:
                    self._flush(prod)
                except Exception:
                    pass
                prod.ended = True
                link.send_quiet(env.pack(env.STREAM_END, prod.sid, prod.seq, error_to_wire(exc)))
        finally:
            self.producers.pop(prod.sid, None)
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except BaseException as exc:
                    log.debug("rpc.stream.aclose_failed", peer=link.name, error=repr(exc))

    async def _wait_credit(self, prod: _Producer, n: int) -> None:
        """Flush what is batched, then wait until ``n`` items may be sent."""
        self._flush(prod)
        while prod.credit < n:
            prod.waiter = self._link.loop.create_future()
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
            self._link.send(frame)
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
                self._link.send_quiet(
                    env.pack(env.STREAM_END, prod.sid, prod.seq, error_to_wire(exc))
                )
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
            body = self._link.encode(items)
        except TypeError as exc:
            raise RemoteError(f"unencodable stream item: {exc}", code=ENCODE_ERROR) from None
        if len(body) > _SPLIT_BYTES and len(items) > 1:
            half = len(items) // 2  # keep frames well under the receiver's size limit
            self._send_items(prod, items[:half])
            self._send_items(prod, items[half:])
            return
        frame = env.pack(env.STREAM_ITEMS, prod.sid, prod.seq, body)
        try:
            self._link.send(frame)
        except ProtocolError as exc:
            raise RemoteError(f"stream item too large: {exc.message}", code=TOO_LARGE) from None
        prod.seq += len(items)

    def on_credit(self, msg: list[Any]) -> None:
        """CREDIT id, n."""
        sid, n = msg[2], msg[3]
        prod = self.producers.get(sid)
        if prod is None or type(n) is not int or n < 1:
            return
        prod.credit += n
        if prod.waiter is not None and not prod.waiter.done():
            prod.waiter.set_result(None)

    def close(self, gone: BaseException) -> None:
        """The connection closed: producers stop, consumers fail with ``gone``."""
        for prod in list(self.producers.values()):
            if prod.task is not None:
                prod.task.cancel()
        for consumer in list(self.consumers.values()):
            consumer.finish(gone)
        self.consumers.clear()


class StreamCall:
    """``async with peer.stream(...) as items``: the consumer side of one stream."""

    def __init__(
        self,
        streams: Streams,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
        *,
        raw: bool = False,
    ) -> None:
        self._streams = streams
        self._link = streams._link
        self._target = target
        self._method = method
        self._args = args
        self._kwargs = kwargs
        self._window = window
        self._consumer: _Consumer | None = None
        self._foreign = False
        self._raw = raw

    async def __aenter__(self) -> StreamCall:
        link, streams = self._link, self._streams
        if link.closed:
            raise link.gone()
        home = asyncio.get_running_loop()
        body = link.encode([list(self._args), self._kwargs])
        consumer = _Consumer(next(streams._ids), self._window, home, link.loop)
        consumer.raw = self._raw
        self._consumer = consumer
        self._foreign = home is not link.loop
        if self._foreign:
            try:
                link.loop.call_soon_threadsafe(
                    streams._open_stream, consumer, self._target, self._method, self._window, body
                )
            except RuntimeError:  # the peer's loop is closed
                raise link.gone() from None
        else:
            streams._open_stream(consumer, self._target, self._method, self._window, body)
        return self

    def __aiter__(self) -> StreamCall:
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
                        self._link.threadsafe(self._streams._consumer_credit, c.sid, n)
                    else:
                        self._streams._consumer_credit(c.sid, n)
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
            self._link.threadsafe(self._streams._consumer_cancel, c.sid)
        else:
            self._streams._consumer_cancel(c.sid)


__all__ = ["MAX_BATCH", "RawBatch", "StreamCall", "Streams"]
