"""Flood control the fake can enforce: Telegram-like per-chat, per-group and global write
limits that answer 429 with ``retry_after`` (off unless a test turns it on)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendDocument",
        "sendPhoto",
        "sendVideo",
        "sendVoice",
        "sendAudio",
        "sendAnimation",
        "sendSticker",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
    }
)


@dataclass(frozen=True)
class RateLimits:
    """Telegram's flood control as this fake models it (the Bot API FAQ: about one message per
    second in a chat with short bursts tolerated, 20 messages per minute in a group, about 30
    messages per second overall; the real burst tolerance is unpublished).

    - per chat, ``chat_methods`` (messages sent and edited) pass a GCRA limiter of
      ``chat_per_s`` with a burst of ``chat_burst`` back-to-back requests;
    - per group (negative chat id), at most ``group_per_minute`` ``chat_methods`` requests in any
      60 s window;
    - overall, at most ``global_per_s`` ``global_methods`` requests (deletes too) in any second.

    ``time_scale`` > 1 speeds every limit up by that factor (tests). A request over a limit gets
    429 with ``retry_after`` in whole seconds (at least 1, like Telegram) and is not counted.
    """

    chat_per_s: float = 1.0
    chat_burst: float = 3.0
    group_per_minute: int = 20
    global_per_s: int = 30
    time_scale: float = 1.0
    chat_methods: frozenset[str] = _MESSAGE_METHODS
    global_methods: frozenset[str] = _MESSAGE_METHODS | {"deleteMessage", "deleteMessages"}


class _FloodControl:
    """Admission per :class:`RateLimits` (call with the server lock held)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        scale = limits.time_scale
        self._emission = 1.0 / (limits.chat_per_s * scale)
        self._tolerance = max(0.0, limits.chat_burst - 1.0) * self._emission
        self._group_window = 60.0 / scale
        self._global_window = 1.0 / scale
        self._tat: dict[int, float] = {}
        self._group_log: dict[int, deque[float]] = {}
        self._global_log: deque[float] = deque()

    @staticmethod
    def _window_wait(log: deque[float], limit: int, window: float, now: float) -> float:
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) < limit:
            return 0.0
        return log[len(log) - limit] + window - now

    def admit(self, method: str, chat_id: int | None, now: float) -> float | None:
        """``None`` when the request may pass (it is then counted), else seconds to wait."""
        lim = self.limits
        charged = method in lim.chat_methods and chat_id is not None
        waits = []
        if method in lim.global_methods:
            waits.append(
                self._window_wait(self._global_log, lim.global_per_s, self._global_window, now)
            )
        if charged:
            assert chat_id is not None
            tat = max(self._tat.get(chat_id, now), now)
            waits.append(tat - self._tolerance - now)
            if chat_id < 0:
                log = self._group_log.setdefault(chat_id, deque())
                waits.append(self._window_wait(log, lim.group_per_minute, self._group_window, now))
        wait = max(waits, default=0.0)
        if wait > 0:
            return wait
        if method in lim.global_methods:
            self._global_log.append(now)
        if charged:
            assert chat_id is not None
            self._tat[chat_id] = max(self._tat.get(chat_id, now), now) + self._emission
            if chat_id < 0:
                self._group_log.setdefault(chat_id, deque()).append(now)
        return None


__all__ = ["RateLimits"]
