"""Answers to a user message: Markdown replies (built-in commands), plain-text replies (what
command plugins return, as the reference sends them) and ``error:`` replies."""

from __future__ import annotations

from typing import Any

from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .render import render_markdown
from .types import TelegramIncomingMessage


def reply_options(
    msg: TelegramIncomingMessage, *, notify: bool = True, reply_to: MessageRef | None = None
) -> SendOptions:
    """Reply to ``msg`` (or ``reply_to``) in the same forum thread."""
    target = reply_to or MessageRef(
        channel_id=msg.chat_id, message_id=msg.message_id, thread_id=msg.thread_id
    )
    return SendOptions(reply_to=target, notify=notify, thread_id=msg.thread_id)


class Replier:
    """Sends replies through the transport (and so through the outbox)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    async def reply(
        self, msg: TelegramIncomingMessage, markdown: str, *, notify: bool = True
    ) -> MessageRef | None:
        """Reply with ``markdown`` rendered to text + entities."""
        text, entities = render_markdown(markdown)
        return await self.send(
            msg, RenderedMessage(text=text, extra={"entities": entities}), notify=notify
        )

    async def reply_plain(
        self,
        msg: TelegramIncomingMessage,
        text: str,
        *,
        notify: bool = True,
        reply_to: MessageRef | None = None,
    ) -> MessageRef | None:
        """Reply with ``text`` as is: no Markdown, no entities."""
        return await self.send(msg, RenderedMessage(text=text), notify=notify, reply_to=reply_to)

    async def send(
        self,
        msg: TelegramIncomingMessage,
        message: RenderedMessage,
        *,
        notify: bool = True,
        reply_to: MessageRef | None = None,
    ) -> MessageRef | None:
        """Send a rendered message as a reply to ``msg``."""
        return await self.transport.send(  # type: ignore[no-any-return]
            channel_id=msg.chat_id,
            message=message,
            options=reply_options(msg, notify=notify, reply_to=reply_to),
        )

    async def send_error(self, msg: TelegramIncomingMessage, error: str) -> None:
        """``error:`` and the error text (Markdown, like the reference's built-in errors)."""
        await self.reply(msg, f"error:\n{error}")


__all__ = ["Replier", "reply_options"]
