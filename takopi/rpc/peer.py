"""One logical RPC connection (same class on both sides). Implementation in progress."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from takopi.rpc.codec import Ref


class Peer:
    """One logical connection: calls, notifications, streams, references, ping."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.closed = False
        self.on_close: list[Callable[[Peer, BaseException | None], Any]] = []

    def register(self, method: str, handler: Callable[..., Awaitable[Any] | Any]) -> None:
        """Serve ``method`` with ``handler`` (sync or async)."""
        raise NotImplementedError

    def register_stream(self, method: str, handler: Callable[..., AsyncIterator[Any]]) -> None:
        """Serve stream ``method`` with an async generator function."""
        raise NotImplementedError

    async def call(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Call ``method`` on the other side and return its result."""
        raise NotImplementedError

    def call_blocking(
        self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Blocking call from any thread other than the peer's loop thread."""
        raise NotImplementedError

    async def call_from_thread_loop(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Awaitable call from another thread's event loop."""
        raise NotImplementedError

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget message."""
        raise NotImplementedError

    def stream(
        self, method: str, *args: Any, window: int = 256, **kwargs: Any
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Open a flow-controlled stream."""
        raise NotImplementedError

    def export(self, obj: object, *, attrs: dict[str, Any] | None = None) -> Ref:
        """Force ``obj`` to travel by reference."""
        return Ref(obj, attrs)

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip answered by the peer's event loop; returns seconds."""
        raise NotImplementedError

    async def aclose(self, reason: str = "closed") -> None:
        """Close the connection."""
        raise NotImplementedError
