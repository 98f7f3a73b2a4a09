"""Finding and invoking the local function a request, notification or stream names.

A method is either registered by name (``peer.register``) or a public method of an exported
object (``target`` = its reference id). Handlers run on the peer loop, or on the loop they were
registered for / exported from (their *home*).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from takopi.rpc.errors import BAD_REQUEST, UNKNOWN_METHOD, UNKNOWN_REF, RemoteError
from takopi.rpc.refs import Refs


@dataclass(slots=True)
class Handler:
    """A registered method."""

    fn: Callable[..., Any]
    is_async: bool
    signature: inspect.Signature | None
    loop: asyncio.AbstractEventLoop | None


Resolved = tuple[Callable[..., Any], asyncio.AbstractEventLoop | None, inspect.Signature | None]


def signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    """``inspect.signature`` or None for callables without one."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def call_checked(
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


class HandlerTable:
    """Methods served by name plus the exported objects' methods (by reference id)."""

    def __init__(self, refs: Refs) -> None:
        self._refs = refs
        self.calls: dict[str, Handler] = {}
        self.streams: dict[str, Handler] = {}

    def register(
        self,
        method: str,
        fn: Callable[..., Any],
        *,
        stream: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Serve ``method`` (a call or a stream) with ``fn``."""
        table = self.streams if stream else self.calls
        is_async = False if stream else inspect.iscoroutinefunction(fn)
        table[method] = Handler(fn, is_async, signature_of(fn), loop)

    def resolve(self, target: Any, method: Any, *, stream: bool = False) -> Resolved:
        """``(fn, home loop, signature)`` for a request; ``RemoteError`` if there is none."""
        if not isinstance(method, str):
            raise RemoteError("method name must be a string", code=BAD_REQUEST)
        if target is None:
            handler = (self.streams if stream else self.calls).get(method)
            if handler is None:
                raise RemoteError(f"unknown method {method!r}", code=UNKNOWN_METHOD)
            return handler.fn, handler.loop, handler.signature
        exp = self._refs.get(target)
        if exp is None:
            raise RemoteError(f"no exported object with ref id {target!r}", code=UNKNOWN_REF)
        if method != "__call__" and (method.startswith("_") or method not in exp.methods):
            raise RemoteError(f"exported object has no method {method!r}", code=UNKNOWN_METHOD)
        fn = exp.obj if method == "__call__" else getattr(exp.obj, method, None)
        if fn is None or not callable(fn):
            raise RemoteError(f"exported object has no method {method!r}", code=UNKNOWN_METHOD)
        return fn, exp.home, signature_of(fn)


async def run_on_home(
    fn: Callable[..., Any],
    sig: inspect.Signature | None,
    args: list[Any],
    kwargs: dict[str, Any],
    home: asyncio.AbstractEventLoop,
) -> Any:
    """Invoke a handler on its home loop (another thread's) and await the result here."""

    async def invoke() -> Any:
        result = call_checked(fn, sig, args, kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    if home.is_closed() or not home.is_running():
        raise RemoteError("the exported object's event loop is no longer running", code=UNKNOWN_REF)
    coro = invoke()
    try:
        cf = asyncio.run_coroutine_threadsafe(coro, home)
    except RuntimeError:
        coro.close()
        raise RemoteError("the exported object's event loop is closed", code=UNKNOWN_REF) from None
    try:
        return await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        cf.cancel()
        raise


def decode_args(
    link_decode: Callable[[bytes], Any], body: bytes
) -> tuple[list[Any], dict[str, Any]]:
    """``[args, kwargs]`` of a request body; ``RemoteError(bad_request)`` otherwise."""
    try:
        args, kwargs = link_decode(body)
    except Exception as exc:
        raise RemoteError(f"undecodable arguments: {exc}", code=BAD_REQUEST) from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise RemoteError("arguments must be [list, dict]", code=BAD_REQUEST)
    if any(not isinstance(k, str) for k in kwargs):
        raise RemoteError("keyword names must be strings", code=BAD_REQUEST)
    return args, kwargs


__all__ = [
    "Handler",
    "HandlerTable",
    "Resolved",
    "call_checked",
    "decode_args",
    "run_on_home",
    "signature_of",
]
