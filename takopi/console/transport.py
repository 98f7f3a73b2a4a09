"""A `Transport` that prints messages to a terminal stream.

Every message takopi sends gets a number (``#3``). Progress edits print only the lines that
changed; final answers are printed whole, framed, so the resume line can be copied.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from takopi.console.render import markdown_to_plain, new_lines
from takopi.transport import ChannelId, MessageRef, RenderedMessage, SendOptions

CONSOLE_CHANNEL = "console"


@dataclass(slots=True)
class _Shown:
    lines: list[str]
    final: bool


@dataclass(slots=True)
class ConsoleTransport:
    """Prints takopi's messages; keeps their text so ``/reply N`` can quote them."""

    out: TextIO
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _shown: dict[int, _Shown] = field(default_factory=dict)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    def next_id(self) -> int:
        """Allocate a message number (user messages are numbered too)."""
        return next(self._ids)

    def text_of(self, message_id: int) -> str | None:
        """The plain text of a message takopi printed, for replies."""
        shown = self._shown.get(message_id)
        return "\n".join(shown.lines) if shown else None

    def _write(self, lines: list[str]) -> None:
        try:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    async def send(
        self,
        *,
        channel_id: ChannelId,
        message: RenderedMessage,
        options: SendOptions | None = None,
    ) -> MessageRef | None:
        lines = markdown_to_plain(message.text)
        async with self._lock:
            message_id = self.next_id()
            final = bool(options and options.notify)
            self._shown[message_id] = _Shown(lines=lines, final=final)
            if final:
                bar = "─" * 8
                self._write([f"{bar} #{message_id} {bar}", *lines, ""])
            else:
                self._write([f"[#{message_id}] {line}" for line in lines if line.strip()])
        return MessageRef(channel_id=channel_id, message_id=message_id)

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef | None:
        lines = markdown_to_plain(message.text)
        async with self._lock:
            message_id = int(ref.message_id)
            previous = self._shown.get(message_id)
            changed = new_lines(previous.lines if previous else [], lines)
            self._shown[message_id] = _Shown(lines=lines, final=False)
            self._write([f"[#{message_id}] {line}" for line in changed])
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        async with self._lock:
            return self._shown.pop(int(ref.message_id), None) is not None

    async def close(self) -> None:
        return None
