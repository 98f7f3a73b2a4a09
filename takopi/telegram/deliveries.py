"""Outcomes the supervisor journaled while this transport was down, delivered at startup.

Records come from ``runtime.pending_deliveries()`` (sync or async) as dicts (or objects) with
``delivery_id, transport, engine, status ("done"|"error"|"cancelled"|"interrupted") — or
kind + ok —, answer, error, resume_line, context_line, channel_id, message_id (or
reply_to_message_id), thread_id, progress_message_id``. Each is rendered like a final message,
sent replying to the user's message (replacing the stale progress message), then acknowledged
with ``runtime.ack_delivery(delivery_id)``. A failed send is not acknowledged (retried at the
next start).
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio

from takopi.logging import get_logger
from takopi.markdown import MarkdownParts
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .bridge import TelegramPresenter

log = get_logger(__name__)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def deliver_pending(runtime: Any, transport: Any, presenter: Any) -> int:
    """Send outcomes the supervisor journaled while this transport was down."""
    pending = getattr(runtime, "pending_deliveries", None)
    ack = getattr(runtime, "ack_delivery", None)
    if pending is None:
        return 0
    try:
        records = await _maybe_await(pending())
    except Exception as exc:
        log.warning("telegram.pending_deliveries.failed", error=str(exc))
        return 0
    delivered = 0
    for record in records or ():
        transport_id = _field(record, "transport")
        if transport_id not in (None, "", "telegram"):
            continue
        try:
            ok = await _deliver(record, transport, presenter)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            log.exception("telegram.delivery.failed", error=str(exc))
            ok = False
        if not ok:
            continue
        delivered += 1
        if ack is not None:
            try:
                await _maybe_await(ack(_field(record, "delivery_id")))
            except Exception as exc:
                log.warning("telegram.delivery.ack_failed", error=str(exc))
    return delivered


async def _deliver(record: Any, transport: Any, presenter: Any) -> bool:
    chat_id = _int(_field(record, "channel_id"))
    if chat_id is None:
        log.warning("telegram.delivery.bad_record", delivery_id=_field(record, "delivery_id"))
        return True  # undeliverable: ack it so it does not come back forever
    status = _field(record, "status")
    if status is None:
        kind = _field(record, "kind")
        status = (
            "interrupted"
            if kind == "interrupted"
            else ("done" if _field(record, "ok") else "error")
        )
    engine = _field(record, "engine") or "?"
    answer = (_field(record, "answer") or "").strip()
    error = _field(record, "error")
    if status == "interrupted":
        body = error or "interrupted: takopi restarted while this run was in progress."
        if answer:
            body = f"{answer}\n\n{body}"
    elif status == "error" and error:
        body = f"{answer}\n\n{error}" if answer else str(error)
    else:
        body = answer or None
    footer_lines = [
        line for line in (_field(record, "context_line"), _field(record, "resume_line")) if line
    ]
    parts = MarkdownParts(
        header=f"{status} · {engine}",
        body=body,
        footer="  \n".join(footer_lines) if footer_lines else None,
    )
    rendered = (
        presenter.render_final_parts(parts)
        if isinstance(presenter, TelegramPresenter)
        else RenderedMessage(text="\n\n".join(p for p in (parts.header, body) if p))
    )
    reply_id = _int(_field(record, "reply_to_message_id")) or _int(_field(record, "message_id"))
    thread_id = _int(_field(record, "thread_id"))
    progress_id = _int(_field(record, "progress_message_id"))
    sent = await transport.send(
        channel_id=chat_id,
        message=rendered,
        options=SendOptions(
            reply_to=MessageRef(channel_id=chat_id, message_id=reply_id) if reply_id else None,
            notify=True,
            replace=MessageRef(channel_id=chat_id, message_id=progress_id) if progress_id else None,
            thread_id=thread_id,
        ),
    )
    log.info(
        "telegram.delivery.sent",
        delivery_id=_field(record, "delivery_id"),
        ok=sent is not None,
        status=status,
    )
    return sent is not None


__all__ = ["deliver_pending"]
