"""Injected faults: 429 with ``retry_after``, 5xx, slow answers, dropped connections and API
errors, for the next requests of a method (or of any method)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

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


class FaultsMixin:
    """Fault rules of the server (its ``_cond`` guards them)."""

    _cond: threading.Condition
    _faults: list[Fault]

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
    ) -> Fault:
        """Make the next ``count`` matching requests fail.

        ``kind``: ``"429"`` (Too Many Requests with ``retry_after``; None omits it), ``"5xx"``
        (HTTP ``status``), ``"slow"`` (answer normally after ``delay`` seconds), ``"drop"``
        (close the connection without answering), ``"error"`` (400 with ``description``)."""
        fault = Fault(
            kind=kind,
            method=method,
            count=count,
            retry_after=retry_after,
            status=status,
            delay=delay,
            description=description,
            chat_id=chat_id,
        )
        with self._cond:
            self._faults.append(fault)
        return fault

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
                fault.count -= 1
                return fault
        return None


__all__ = ["Fault", "FaultsMixin"]
