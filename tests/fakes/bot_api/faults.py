"""Injected faults: 429 with ``retry_after``, 5xx, slow answers, dropped connections and API
errors, for the next requests of a method (or of any method)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .limits import RateLimits, _FloodControl
from .records import _as_int


@dataclass
class Fault:
    """A fault rule: applies to the next ``count`` requests of ``method`` (None = any)."""

    kind: str  # "429" | "5xx" | "slow" | "drop" | "error"
    method: str | None = None
    count: int = 1
    retry_after: float | None = 1.0
    status: int = 502
    delay: float = 0.0
    description: str = "Bad Request"
    chat_id: int | None = None
    confirming: bool = False
    """Only ``getUpdates`` requests that would confirm a queued update (offset beyond it)."""


class FaultsMixin:
    """Fault rules of the server (its ``_cond`` guards them)."""

    _cond: threading.Condition
    _faults: list[Fault]
    _updates: list[dict[str, Any]]
    _flood: _FloodControl | None
    errors: list[tuple[str, int, str]]

    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        count: int = 1,
        retry_after: float | None = 1.0,
        status: int = 502,
        delay: float = 0.0,
        description: str = "Bad Request",
        chat_id: int | None = None,
        confirming: bool = False,
    ) -> Fault:
        """Make the next ``count`` matching requests fail.

        ``kind``: ``"429"`` (Too Many Requests with ``retry_after``; None omits it), ``"5xx"``
        (HTTP ``status``), ``"slow"`` (answer normally after ``delay`` seconds), ``"drop"``
        (close the connection without answering), ``"error"`` (400 with ``description``).
        ``confirming``: only ``getUpdates`` requests whose offset would confirm an update still
        queued (the poll after one that handed an update out; earlier polls pass)."""
        fault = Fault(
            kind=kind,
            method=method,
            count=count,
            retry_after=retry_after,
            status=status,
            delay=delay,
            description=description,
            chat_id=chat_id,
            confirming=confirming,
        )
        with self._cond:
            self._faults.append(fault)
        return fault

    def enforce_limits(self, limits: RateLimits | None = None) -> RateLimits:
        """Answer 429 to writes over Telegram-like flood limits (``RateLimits()`` by default)
        from now on; counters start empty."""
        limits = limits or RateLimits()
        with self._cond:
            self._flood = _FloodControl(limits)
        return limits

    def stop_enforcing_limits(self) -> None:
        with self._cond:
            self._flood = None

    def rate_limited(self) -> list[tuple[str, int, str]]:
        """The 429 answers given so far (flood control and injected ones)."""
        with self._cond:
            return [e for e in self.errors if e[1] == 429]

    def _admit(self, method: str, params: dict[str, Any]) -> float | None:
        with self._cond:
            if self._flood is None:
                return None
            return self._flood.admit(method, _as_int(params.get("chat_id")), time.monotonic())

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.count <= 0:
                    continue
                if fault.method is not None and fault.method != method:
                    continue
                if fault.chat_id is not None and _as_int(params.get("chat_id")) != fault.chat_id:
                    continue
                if fault.confirming and not self._would_confirm(params):
                    continue
                fault.count -= 1
                return fault
        return None

    def _would_confirm(self, params: dict[str, Any]) -> bool:
        offset = _as_int(params.get("offset")) or 0
        return any(
            isinstance(u.get("update_id"), int) and u["update_id"] < offset for u in self._updates
        )


__all__ = ["Fault", "FaultsMixin"]
