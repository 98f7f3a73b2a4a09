"""Transport-facing value types and the `Transport` protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

ChannelId: TypeAlias = int | str
MessageId: TypeAlias = int | str
ThreadId: TypeAlias = int | str


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message in some chat. ``raw``, ``thread_id`` and ``sender_id`` do not take part in
    equality or hashing (two refs to the same message compare equal)."""

    channel_id: ChannelId
    message_id: MessageId
    raw: Any = field(default=None, compare=False, hash=False)
    thread_id: ThreadId | None = field(default=None, compare=False, hash=False)
    sender_id: int | str | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """Text ready for a transport, plus transport-specific metadata in ``extra``."""

    text: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendOptions:
    """How to send: reply target, notification, message to replace, thread."""

    reply_to: MessageRef | None = None
    notify: bool = True
    replace: MessageRef | None = None
    thread_id: ThreadId | None = None


@runtime_checkable
class Transport(Protocol):
    """What the bridge needs from a chat transport."""

    async def close(self) -> None: ...

    async def send(
        self,
        *,
        channel_id: ChannelId,
        message: RenderedMessage,
        options: SendOptions | None = None,
    ) -> MessageRef | None: ...

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef | None: ...

    async def delete(self, *, ref: MessageRef) -> bool: ...


__all__ = [
    "ChannelId",
    "MessageId",
    "MessageRef",
    "RenderedMessage",
    "SendOptions",
    "ThreadId",
    "Transport",
]
