"""How fast the outbox may write to Telegram: a token bucket per chat and a global window.

Telegram's published limits (Bot API FAQ, "My bot is hitting limits, how do I avoid this?"):
inside one chat avoid more than one message per second — short bursts are tolerated, sustained
excess ends in 429 — at most 20 messages per minute in one group, and about 30 messages per
second overall. The outbox turns them into:

- **a token bucket per chat** holding ``Pacing.burst`` tokens (3), refilled at one token per
  ``interval_for(chat)`` seconds: 1 s in a private chat, 60/17 s (≈3.5 s) in a group, so that
  a full burst plus a minute of refill is 3 + 17 = 20 messages, the group limit;
- **what each write costs**: a send takes 1 token; an edit takes 1 token too (the FAQ does
  not say; bots that edit too often do get 429), and a *progress* edit — one nobody waits for — only goes when
  it leaves ``edit_reserve`` tokens (2) behind: progress edits ride on spare capacity and
  never eat the tokens the next progress message and the next final answer need (an edit that
  carries a final answer, with ``final_notify`` off, is waited for and goes like a send);
  a delete takes ``delete_cost`` (0): the published limits count messages *sent*, and the
  deletes we issue are bounded by the sends that made those messages;
- **a global sliding window**: at most ``global_rate`` (30) writes of any kind, deletes
  included, in any second;
- **accounting at the answer**: tokens are taken when a write starts, and the chat's bucket
  does not refill while that write is in flight (refill restarts when the answer arrives).
  Telegram sees each request somewhere between our start and our answer, so this keeps
  Telegram's view of our rate at or below our own, however the network delays requests;
- a 429 empties the chat's bucket and blocks the chat for ``retry_after``.

On an idle chat the progress message and a short run's final answer therefore go out at once,
and the long-run rate stays within the limits above. ``Pacing.REFERENCE`` is the reference
takopi's clock instead (one write per interval per chat, deletes included); set
``TAKOPI_TELEGRAM_PACING=reference`` to get it (benchmarks compare against it).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

PRIVATE_INTERVAL_S = 1.0
GROUP_INTERVAL_S = 60.0 / 17.0
GLOBAL_RATE_PER_S = 30
PACING_ENV = "TAKOPI_TELEGRAM_PACING"

# A bucket within this many tokens of what an op needs counts as ready (float rounding).
_EPSILON = 1e-9


def is_group_chat_id(chat_id: int | str | None) -> bool:
    """Telegram group and channel ids are negative."""
    try:
        return chat_id is not None and int(chat_id) < 0
    except (TypeError, ValueError):
        return False


def default_interval(chat_id: int | None) -> float:
    """Seconds per token of a chat's bucket: 1 s private, 60/17 s groups (20 per minute)."""
    return GROUP_INTERVAL_S if is_group_chat_id(chat_id) else PRIVATE_INTERVAL_S


@dataclass(frozen=True)
class Pacing:
    """How a chat's bucket is spent (see the module docstring)."""

    name: str
    burst: float
    edit_reserve: float
    delete_cost: float

    def cost(self, kind: str, *, background: bool = False) -> tuple[float, float]:
        """``(tokens taken, tokens that must be in the bucket)`` for a write of ``kind``
        (``"send"``, ``"edit"`` or ``"delete"``); ``background``: nobody waits for it."""
        if kind == "delete":
            return self.delete_cost, self.delete_cost
        if kind == "edit" and background:
            return 1.0, min(self.burst, 1.0 + self.edit_reserve)
        return 1.0, 1.0


BUCKET = Pacing(name="bucket", burst=3.0, edit_reserve=2.0, delete_cost=0.0)
REFERENCE = Pacing(name="reference", burst=1.0, edit_reserve=0.0, delete_cost=1.0)
PACINGS = {p.name: p for p in (BUCKET, REFERENCE)}


def pacing_from_env(environ: Mapping[str, str] = os.environ) -> tuple[Pacing, str | None]:
    """The pacing ``TAKOPI_TELEGRAM_PACING`` asks for (default ``bucket``), plus the unknown
    value when it names none (the caller logs it)."""
    raw = (environ.get(PACING_ENV) or "").strip().lower()
    if not raw:
        return BUCKET, None
    pacing = PACINGS.get(raw)
    return (pacing, None) if pacing is not None else (BUCKET, raw)


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second (``inf``: never runs dry)."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def level(self, now: float) -> float:
        if math.isinf(self.rate):
            return self.capacity
        return min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)

    def full(self, now: float) -> bool:
        return self.level(now) >= self.capacity - _EPSILON

    def ready_at(self, now: float, need: float) -> float:
        """When the bucket will hold ``need`` tokens (``now`` if it already does)."""
        missing = min(need, self.capacity) - self.level(now)
        if missing <= _EPSILON:
            return now
        if self.rate <= 0:
            return math.inf
        # the bucket may be blocked until ``updated`` (a 429): refill starts from there
        return max(now, self.updated) + missing / self.rate

    def spend(self, now: float, cost: float) -> None:
        self.tokens = self.level(now) - cost
        self.updated = max(self.updated, now)

    def restart_refill(self, now: float) -> None:
        """Refill resumes from ``now``: what would have accrued since the last spend is lost."""
        self.updated = max(self.updated, now)

    def drain(self, until: float) -> None:
        """Empty the bucket; it starts refilling at ``until``."""
        self.tokens = 0.0
        self.updated = max(self.updated, until)


class SlidingWindow:
    """At most ``limit`` ops in any ``window_s``; an op in flight counts as happening now and
    is recorded at its finish time."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._finished: deque[float] = deque()
        self._in_flight = 0

    def _prune(self, now: float) -> None:
        while self._finished and self._finished[0] <= now - self.window_s:
            self._finished.popleft()

    def ready_at(self, now: float) -> float:
        """When one more op may start (``inf``: once an op in flight finishes)."""
        self._prune(now)
        excess = len(self._finished) + self._in_flight - self.limit
        if excess < 0:
            return now
        if excess >= len(self._finished):
            return math.inf
        return self._finished[excess] + self.window_s

    def start(self) -> None:
        self._in_flight += 1

    def finish(self, now: float) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        self._finished.append(now)


__all__ = [
    "BUCKET",
    "GLOBAL_RATE_PER_S",
    "GROUP_INTERVAL_S",
    "PACINGS",
    "PACING_ENV",
    "PRIVATE_INTERVAL_S",
    "REFERENCE",
    "Pacing",
    "SlidingWindow",
    "TokenBucket",
    "default_interval",
    "is_group_chat_id",
    "pacing_from_env",
]
