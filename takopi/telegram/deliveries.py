"""Outcomes the supervisor journaled while this transport was down, delivered at startup.

Records come from ``runtime.pending_deliveries()`` (sync or async) as
:class:`~takopi.protocol.delivery.Delivery` objects (dicts with the same fields are read too).
Each is rendered like a final message from the delivery's header, body and footer, sent
replying to the user's message (replacing the stale progress message), then acknowledged with
``runtime.ack_delivery(delivery_id)``. A failed send is not acknowledged (retried at the next
start).

With ``edit_progress`` (``final_notify`` off: finals are edits of the progress message) the
progress message is edited into the outcome instead, like a live final. That makes a
redelivery idempotent: a transport killed after Telegram took the final but before the
supervisor got the ack leaves the outcome pending, and its successor then rewrites the same
message rather than sending a second answer; the overflow messages of a split answer are not
sent again either (see ``TelegramTransport._edit_split``). (A new, notifying message cannot be sent
idempotently — the Bot API has no such key — so with ``final_notify`` on a kill in that
window can repeat the answer.) When the progress message is gone, a new reply is sent.
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio

from takopi.logging import get_logger
from takopi.markdown import MarkdownParts
from takopi.protocol.delivery import Delivery
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .bridge import TelegramPresenter
from .types import int_or_none

log = get_logger(__name__)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def deliver_pending(
    runtime: Any, transport: Any, presenter: Any, *, edit_progress: bool = False
) -> int:
    """Send outcomes the supervisor journaled while this transport was down (editing their
    progress message into them with ``edit_progress``)."""
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
        delivery = Delivery.from_record(record)
        if delivery.transport not in ("", "telegram"):
            continue
        try:
            ok = await _deliver(delivery, transport, presenter, edit_progress=edit_progress)
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
                await _maybe_await(ack(delivery.delivery_id))
            except Exception as exc:
                log.warning("telegram.delivery.ack_failed", error=str(exc))
    return delivered


async def _deliver(
    delivery: Delivery, transport: Any, presenter: Any, *, edit_progress: bool
) -> bool:
    chat_id = int_or_none(delivery.channel_id)
    if chat_id is None:
        log.warning("telegram.delivery.bad_record", delivery_id=delivery.delivery_id)
        return True  # undeliverable: ack it so it does not come back forever
    body = delivery.body
    parts = MarkdownParts(
        header=delivery.header,
        body=body,
        footer="  \n".join(delivery.footer_lines) or None,
    )
    rendered = (
        presenter.render_final_parts(parts)
        if isinstance(presenter, TelegramPresenter)
        else RenderedMessage(text="\n\n".join(p for p in (parts.header, body) if p))
    )
    reply_id = int_or_none(delivery.message_id)
    thread_id = int_or_none(delivery.thread_id)
    progress_id = int_or_none(delivery.progress_message_id)
    if edit_progress and progress_id is not None:
        progress = MessageRef(channel_id=chat_id, message_id=progress_id, thread_id=thread_id)
        if await _edit(transport, progress, rendered) is not None:
            log.info(
                "telegram.delivery.edited", delivery_id=delivery.delivery_id, status=delivery.status
            )
            return True
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
        delivery_id=delivery.delivery_id,
        ok=sent is not None,
        status=delivery.status,
    )
    return sent is not None


async def _edit(transport: Any, ref: MessageRef, message: RenderedMessage) -> Any:
    """Edit ``ref`` (waiting for it); None if that failed (e.g. the message is gone)."""
    try:
        return await transport.edit(ref=ref, message=message, wait=True)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        log.info("telegram.delivery.edit_failed", error=str(exc) or type(exc).__name__)
        return None


__all__ = ["deliver_pending"]
