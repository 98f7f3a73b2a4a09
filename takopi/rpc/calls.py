"""Requests, responses, notifications and pings of one connection (both directions).

Outgoing: a request id maps to a future on the peer loop; ``timeout`` rejects it with
:class:`CallTimeout` and tells the other side to stop (CANCEL); cancelling the caller does the
same. Calls may come from any thread: their coroutine is handed to the peer loop.
Incoming: the handler runs inline (sync) or as a task (async) and its result or error is sent
back; CANCEL cancels that task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Iterator
from typing import Any

from takopi.logging import get_logger
from takopi.rpc import envelope as env
from takopi.rpc.errors import (
    ENCODE_ERROR,
    TOO_LARGE,
    CallTimeout,
    ProtocolError,
    RemoteError,
    RpcError,
    error_from_wire,
    error_to_wire,
)
from takopi.rpc.handlers import HandlerTable, call_checked, decode_args, run_on_home
from takopi.rpc.link import Link

log = get_logger("takopi.rpc")

AnyFuture = asyncio.Future[Any] | concurrent.futures.Future[Any]


def resolve_future(fut: AnyFuture, result: Any) -> None:
    """Set ``fut``'s result unless it is already done."""
    try:
        if not fut.done():
            fut.set_result(result)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass


def reject_future(fut: AnyFuture, exc: BaseException) -> None:
    """Fail ``fut`` with ``exc`` unless it is already done."""
    try:
        if not fut.done():
            fut.set_exception(exc)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass


class Calls:
    """The request/response side of a peer."""

    def __init__(self, link: Link, handlers: HandlerTable, ids: Iterator[int]) -> None:
        self._link = link
        self._handlers = handlers
        self._ids = ids
        self.pending: dict[int, AnyFuture] = {}
        self.incoming: dict[int, asyncio.Task[Any]] = {}
        self._pings: dict[int, asyncio.Future[None]] = {}

    # ------------------------------------------------------------------ outgoing

    async def call(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """Call ``method`` (on object ``target``) from any thread's loop; its result."""
        link = self._link
        if link.closed:
            raise link.gone()
        body = link.encode([list(args), kwargs])
        if link.on_peer_loop():
            return await self._request(target, method, body, timeout)
        try:
            cf = asyncio.run_coroutine_threadsafe(
                self._request(target, method, body, timeout), link.loop
            )
        except RuntimeError:
            raise link.gone() from None
        return await asyncio.wrap_future(cf)

    def call_blocking(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """Call from a plain thread (not the peer loop's) and block until the answer."""
        link = self._link
        if link.on_peer_loop() or threading.get_ident() == link.loop_thread:
            raise RuntimeError("call_blocking() on the peer loop's own thread would deadlock")
        if link.closed:
            raise link.gone()
        body = link.encode([list(args), kwargs])
        try:
            cf = asyncio.run_coroutine_threadsafe(
                self._request(target, method, body, timeout), link.loop
            )
        except RuntimeError:
            raise link.gone() from None
        try:
            return cf.result()
        except concurrent.futures.CancelledError:
            raise link.gone() from None
        except BaseException:
            if not cf.done():
                cf.cancel()  # KeyboardInterrupt in the waiting thread: cancel remotely
            raise

    async def _request(
        self, target: int | None, method: str, body: bytes, timeout: float | None
    ) -> Any:
        link = self._link
        if link.closed:
            raise link.gone()
        rid = next(self._ids)
        fut: asyncio.Future[Any] = link.loop.create_future()
        self.pending[rid] = fut
        timer = None
        try:
            link.send(env.pack(env.REQUEST, rid, target, method, body))
            if timeout is not None:
                timer = link.loop.call_later(timeout, self._expire, rid, method, timeout)
            return await fut
        except asyncio.CancelledError:
            if rid in self.pending and not link.closed:
                link.send_quiet(env.pack(env.CANCEL, rid))
            raise
        finally:
            self.pending.pop(rid, None)
            if timer is not None:
                timer.cancel()

    def _expire(self, rid: int, method: str, timeout: float) -> None:
        fut = self.pending.pop(rid, None)
        if fut is None:
            return
        reject_future(fut, CallTimeout(f"{method!r} got no answer within {timeout:g}s"))
        self._link.send_quiet(env.pack(env.CANCEL, rid))

    async def notify(
        self, target: int | None, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Fire-and-forget call from any thread's loop."""
        link = self._link
        if link.closed:
            raise link.gone()
        frame = env.pack(env.NOTIFY, target, method, link.encode([list(args), kwargs]))
        if link.on_peer_loop():
            link.send(frame)
        else:
            try:
                link.loop.call_soon_threadsafe(link.send_quiet, frame)
            except RuntimeError:  # the peer's loop is closed
                raise link.gone() from None

    async def ping(self, timeout: float | None) -> float:
        """Round trip answered by the other side's event loop (call on the peer loop)."""
        link = self._link
        if link.closed:
            raise link.gone()
        nonce = next(self._ids)
        fut: asyncio.Future[None] = link.loop.create_future()
        self._pings[nonce] = fut
        start = link.loop.time()
        try:
            link.send(env.pack(env.PING, nonce))
            if timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(fut, timeout)
                except TimeoutError:
                    raise CallTimeout(f"no pong from {link.name} within {timeout:g}s") from None
        finally:
            self._pings.pop(nonce, None)
        return link.loop.time() - start

    # ------------------------------------------------------------------ incoming frames

    def on_response(self, msg: list[Any]) -> None:
        """RESPONSE id, body."""
        fut = self.pending.pop(msg[2], None)
        if fut is None:
            return  # cancelled or timed out meanwhile
        try:
            result = self._link.decode(msg[3])
        except Exception as exc:
            reject_future(fut, ProtocolError(f"undecodable response: {exc}"))
            return
        resolve_future(fut, result)

    def on_error(self, msg: list[Any]) -> None:
        """ERROR id, error dict."""
        fut = self.pending.pop(msg[2], None)
        if fut is not None:
            reject_future(fut, error_from_wire(msg[3]))

    def on_ping(self, msg: list[Any]) -> None:
        """PING nonce: answered right here, on the event loop."""
        self._link.send_quiet(env.pack(env.PONG, msg[2]))

    def on_pong(self, msg: list[Any]) -> None:
        """PONG nonce."""
        ping = self._pings.get(msg[2])
        if ping is not None:
            resolve_future(ping, None)

    def on_request(self, msg: list[Any]) -> None:
        """REQUEST id, target, method, body."""
        rid, target, method, body = msg[2], msg[3], msg[4], msg[5]
        if type(rid) is not int or not isinstance(body, bytes):
            raise ValueError("malformed request")
        try:
            fn, home, sig = self._handlers.resolve(target, method)
            args, kwargs = decode_args(self._link.decode, body)
        except RemoteError as exc:
            self._send_error(rid, exc)
            return
        if home is not None and home is not self._link.loop:
            self._start_incoming(rid, run_on_home(fn, sig, args, kwargs, home))
            return
        try:
            result = call_checked(fn, sig, args, kwargs)
        except Exception as exc:
            log.debug("rpc.handler.failed", peer=self._link.name, method=method, error=repr(exc))
            self._send_error(rid, exc)
            return
        if inspect.isawaitable(result):
            self._start_incoming(rid, result)
        else:
            self._respond(rid, result)

    def on_notify(self, msg: list[Any]) -> None:
        """NOTIFY target, method, body: run the handler, only log its errors."""
        target, method, body = msg[2], msg[3], msg[4]
        link = self._link
        try:
            fn, home, sig = self._handlers.resolve(target, method)
            args, kwargs = decode_args(link.decode, body)
        except RemoteError as exc:
            log.warning("rpc.notify.rejected", peer=link.name, method=method, error=str(exc))
            return
        if home is not None and home is not link.loop:
            link.loop.create_task(
                self._notify_task(method, run_on_home(fn, sig, args, kwargs, home))
            )
            return
        try:
            result = call_checked(fn, sig, args, kwargs)
        except Exception as exc:
            log.warning("rpc.notify.failed", peer=link.name, method=method, error=repr(exc))
            return
        if inspect.isawaitable(result):
            link.loop.create_task(self._notify_task(method, result))

    def cancel_incoming(self, rid: Any) -> None:
        """CANCEL of a request we are serving."""
        task = self.incoming.get(rid)
        if task is not None:
            task.cancel()

    def _start_incoming(self, rid: int, awaitable: Awaitable[Any]) -> None:
        task = self._link.loop.create_task(self._await_and_respond(rid, awaitable))
        self.incoming[rid] = task
        task.add_done_callback(lambda _t: self.incoming.pop(rid, None))

    async def _await_and_respond(self, rid: int, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            return  # cancelled by the caller (CANCEL) or by close(): nobody waits for an answer
        except Exception as exc:
            log.debug("rpc.handler.failed", peer=self._link.name, error=repr(exc))
            self._send_error(rid, exc)
            return
        self._respond(rid, result)

    def _respond(self, rid: int, result: Any) -> None:
        link = self._link
        try:
            body = link.encode(result)
        except Exception as exc:
            log.warning("rpc.response.unencodable", peer=link.name, error=str(exc))
            self._send_error(rid, RemoteError(f"unencodable result: {exc}", code=ENCODE_ERROR))
            return
        try:
            link.send(env.pack(env.RESPONSE, rid, body))
        except ProtocolError as exc:
            self._send_error(rid, RemoteError(f"result too large: {exc.message}", code=TOO_LARGE))
        except RpcError:
            pass

    def _send_error(self, rid: int, exc: BaseException) -> None:
        self._link.send_quiet(env.pack(env.ERROR, rid, error_to_wire(exc)))

    async def _notify_task(self, method: Any, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            log.warning("rpc.notify.failed", peer=self._link.name, method=method, error=repr(exc))

    def close(self, gone: BaseException) -> None:
        """The connection closed: everything pending fails, handlers are cancelled."""
        for fut in list(self.pending.values()):
            reject_future(fut, gone)
        self.pending.clear()
        for ping in self._pings.values():
            reject_future(ping, gone)
        for task in list(self.incoming.values()):
            task.cancel()


__all__ = ["Calls", "reject_future", "resolve_future"]
