"""A run outcome the supervisor journaled and a transport still owes its chat.

This is the public shape transports get from ``runtime.pending_deliveries()`` (then they call
``runtime.ack_delivery(delivery.delivery_id)`` once the message is out). It is rendered in one
place — :attr:`Delivery.header`, :attr:`Delivery.body`, :attr:`Delivery.footer_lines` and the
plain :attr:`Delivery.text` — so every transport shows the same outcome the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

DeliveryStatus = Literal["done", "error", "cancelled", "interrupted"]
STATUSES: tuple[DeliveryStatus, ...] = ("done", "error", "cancelled", "interrupted")
INTERRUPTED_ERROR = "interrupted: takopi stopped while this run was in progress"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One journaled outcome, addressed to the chat message that started the run."""

    delivery_id: str
    status: DeliveryStatus = "interrupted"
    transport: str = ""
    engine: str = ""
    answer: str = ""
    error: str | None = None
    resume_line: str | None = None
    context_line: str | None = None
    channel_id: int | str | None = None
    message_id: int | str | None = None
    thread_id: int | str | None = None
    progress_message_id: int | str | None = None

    @property
    def header(self) -> str:
        """``done · codex``."""
        return f"{self.status} · {self.engine}" if self.engine else self.status

    @property
    def body(self) -> str | None:
        """The answer, then the error (an interruption always says what happened)."""
        error = self.error
        if error is None and self.status == "interrupted":
            error = INTERRUPTED_ERROR
        parts = [part for part in (self.answer.strip(), (error or "").strip()) if part]
        return "\n\n".join(parts) or None

    @property
    def footer_lines(self) -> tuple[str, ...]:
        """The ``ctx:`` line and the resume line, when known."""
        return tuple(line for line in (self.context_line, self.resume_line) if line)

    @property
    def text(self) -> str:
        """Plain-text rendering: header, body and footer, separated by blank lines."""
        parts = [self.header, self.body, "\n".join(self.footer_lines)]
        return "\n\n".join(part for part in parts if part)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields plus ``text`` (control socket, test transports)."""
        return {**asdict(self), "text": self.text}

    @classmethod
    def from_record(cls, record: Delivery | Mapping[str, Any] | object) -> Delivery:
        """A delivery from itself, a mapping or an object with the same fields.

        Older records said ``kind``/``ok`` instead of ``status`` and ``reply_to_message_id``
        instead of ``message_id``; both are understood.
        """
        if isinstance(record, Delivery):
            return record

        def get(name: str) -> Any:
            if isinstance(record, Mapping):
                return record.get(name)
            return getattr(record, name, None)

        status = get("status")
        if status not in STATUSES:
            kind = get("kind")
            status = "interrupted" if kind == "interrupted" else ("done" if get("ok") else "error")
        message_id = get("message_id")
        if message_id is None:
            message_id = get("reply_to_message_id")
        return cls(
            delivery_id=str(get("delivery_id") or ""),
            status=cast(DeliveryStatus, status),
            transport=str(get("transport") or ""),
            engine=str(get("engine") or ""),
            answer=str(get("answer") or ""),
            error=_optional_str(get("error")),
            resume_line=_optional_str(get("resume_line")),
            context_line=_optional_str(get("context_line")),
            channel_id=get("channel_id"),
            message_id=message_id,
            thread_id=get("thread_id"),
            progress_message_id=get("progress_message_id"),
        )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


__all__ = ["INTERRUPTED_ERROR", "STATUSES", "Delivery", "DeliveryStatus"]
