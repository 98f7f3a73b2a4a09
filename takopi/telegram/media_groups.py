"""Albums (``media_group_id``): Telegram delivers each file of an album as its own message.

:class:`MediaGroupBuffer` holds them per ``(chat_id, media_group_id)`` until
``media_group_debounce_s`` passed without a new one, then hands the whole album (sorted by
message id) to ``on_flush`` with their :class:`~.intake.HeldMessages` (the files stay open
with the supervisor while they wait; the timer itself holds nothing: ``on_flush`` decides
which message the album is handled as). A failing ``on_flush`` is logged, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from takopi.logging import get_logger

from .intake import HeldMessages, detached
from .types import TelegramIncomingMessage

GroupKey = tuple[int, str]
OnAlbum = Callable[[list[TelegramIncomingMessage], HeldMessages], Awaitable[None]]

log = get_logger(__name__)


@dataclass
class _Album:
    messages: list[TelegramIncomingMessage] = field(default_factory=list)
    deadline: float = 0.0
    held: HeldMessages = field(default_factory=HeldMessages)


class MediaGroupBuffer:
    """See module docstring."""

    def __init__(
        self,
        *,
        delay_s: float,
        task_group: TaskGroup,
        on_flush: OnAlbum,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._delay_s = max(0.0, float(delay_s))
        self._tg = task_group
        self._on_flush = on_flush
        self._clock = clock
        self._albums: dict[GroupKey, _Album] = {}

    def add(self, msg: TelegramIncomingMessage) -> None:
        """Buffer one message of an album (``msg.media_group_id`` must be set)."""
        if msg.media_group_id is None:
            raise ValueError("message is not part of a media group")
        key = (msg.chat_id, msg.media_group_id)
        album = self._albums.get(key)
        if album is None:
            album = _Album()
            self._albums[key] = album
            with detached():
                self._tg.start_soon(self._timer, key, album)
        if all(m.message_id != msg.message_id for m in album.messages):
            album.messages.append(msg)
            album.held.add(msg)
        album.deadline = self._clock() + self._delay_s

    def pending(self) -> int:
        """Albums still being collected."""
        return len(self._albums)

    async def _timer(self, key: GroupKey, album: _Album) -> None:
        error: BaseException | None = None
        try:
            while True:
                remaining = album.deadline - self._clock()
                if remaining <= 0:
                    break
                await anyio.sleep(remaining)
            if self._albums.get(key) is album:
                del self._albums[key]
            messages = sorted(album.messages, key=lambda m: m.message_id)
            log.info("telegram.media_group.flush", chat_id=key[0], size=len(messages))
            await self._on_flush(messages, album.held)
        except anyio.get_cancelled_exc_class() as exc:
            error = exc
            raise
        except Exception as exc:
            log.exception("telegram.media_group.failed", chat_id=key[0], error=str(exc))
        finally:
            if self._albums.get(key) is album:
                del self._albums[key]
            album.held.drop_all(error)  # whatever on_flush did not handle


def album_lead(messages: Sequence[TelegramIncomingMessage]) -> TelegramIncomingMessage:
    """The message an album is answered as: the first with a caption, else the first."""
    return next((m for m in messages if m.text.strip()), messages[0])


__all__ = ["MediaGroupBuffer", "album_lead"]
