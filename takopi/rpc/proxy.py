"""Client-side stand-ins for objects that live in the other process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from takopi.rpc.codec import register_proxy_type


class RefCaller(Protocol):
    """What a proxy needs from the connection it came over (a :class:`~takopi.rpc.Peer`)."""

    def _call_ref(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Awaitable[Any]: ...

    def _call_blocking(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any: ...

    async def _notify(
        self, target: int | None, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None: ...

    def _stream(
        self,
        target: int | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        window: int,
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]: ...


class RemoteProxy:
    """A live object exported by the peer.

    ``await proxy.method(...)`` calls it; ``await proxy(...)`` calls a remote callable;
    ``proxy.call_blocking("method", ...)`` blocks a plain thread; ``proxy.rpc_stream("m", ...)``
    opens a stream on a method returning an async iterator. Only public methods that existed
    at export time are visible, plus the attribute snapshot shipped with the reference.
    Sending the proxy back to its owner yields the original object.
    """

    __slots__ = ("__weakref__", "_rpc_attrs", "_rpc_count", "_rpc_methods", "_rpc_peer", "_rpc_ref")

    def __init__(
        self, peer: RefCaller, ref_id: int, methods: frozenset[str], attrs: dict[str, Any]
    ) -> None:
        self._rpc_peer = peer
        self._rpc_ref = ref_id
        self._rpc_methods = methods
        self._rpc_attrs = attrs
        self._rpc_count = [0]  # how many times the peer sent us this ref (for RELEASE)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_rpc"):
            raise AttributeError(name)
        attrs = self._rpc_attrs
        if name in attrs:
            return attrs[name]
        if name.startswith("_") or name not in self._rpc_methods:
            raise AttributeError(f"remote object has no public method or attribute {name!r}")
        return RemoteMethod(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "__call__" not in self._rpc_methods:
            raise TypeError("remote object is not callable")
        return self._rpc_peer._call_ref(self._rpc_ref, "__call__", args, kwargs, None)

    async def rpc_call(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """``await proxy.rpc_call("m", ...)`` (same as ``await proxy.m(...)``, with timeout)."""
        return await self._rpc_peer._call_ref(self._rpc_ref, method, args, kwargs, timeout)

    def call_blocking(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` and block this (non-peer-loop) thread for the answer."""
        return self._rpc_peer._call_blocking(self._rpc_ref, method, args, kwargs, timeout)

    async def rpc_notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget call of ``method``."""
        await self._rpc_peer._notify(self._rpc_ref, method, args, kwargs)

    def rpc_stream(
        self, method: str, *args: Any, window: int = 256, **kwargs: Any
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Stream the async iterator returned by the remote ``method``."""
        return self._rpc_peer._stream(self._rpc_ref, method, args, kwargs, window)

    def __repr__(self) -> str:
        return f"<RemoteProxy ref={self._rpc_ref} methods={sorted(self._rpc_methods)}>"


class RemoteMethod:
    """``proxy.name``: awaitable call plus ``.blocking(...)``, ``.notify(...)``, ``.stream(...)``."""

    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: RemoteProxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        p = self._proxy
        return p._rpc_peer._call_ref(p._rpc_ref, self._name, args, kwargs, None)

    def blocking(self, *args: Any, **kwargs: Any) -> Any:
        """Blocking call from a thread that is not the peer loop's."""
        p = self._proxy
        return p._rpc_peer._call_blocking(p._rpc_ref, self._name, args, kwargs, None)

    async def notify(self, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget."""
        p = self._proxy
        await p._rpc_peer._notify(p._rpc_ref, self._name, args, kwargs)

    def stream(
        self, *args: Any, window: int = 256, **kwargs: Any
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Stream the async iterator this remote method returns."""
        p = self._proxy
        return p._rpc_peer._stream(p._rpc_ref, self._name, args, kwargs, window)

    def __repr__(self) -> str:
        return f"<RemoteMethod {self._name} of ref {self._proxy._rpc_ref}>"


register_proxy_type(RemoteProxy)

__all__ = ["RefCaller", "RemoteMethod", "RemoteProxy"]
