"""Which updates the loop handles at all: configured chats (the main chat, project chats,
``allowed_user_ids``' private chats), allowed senders, and what happens to messages that
arrived while takopi was offline (``offline_backlog``)."""

from __future__ import annotations

from typing import Literal

from takopi.logging import get_logger

from .bridge import TelegramBridgeConfig
from .types import TelegramCallbackQuery, TelegramIncomingMessage

BACKLOG_NOTICE = (
    "takopi was offline when this message arrived, so it was not run. send it again to run it."
)

Verdict = Literal["accept", "ignore", "notify"]

log = get_logger(__name__)


class ChatGate:
    """Accepts or ignores updates (see module docstring)."""

    def __init__(self, cfg: TelegramBridgeConfig, *, started_at: float) -> None:
        self.cfg = cfg
        self.runtime = cfg.runtime
        self.started_at = started_at

    def chat_accepted(self, chat_id: int | None) -> bool:
        if chat_id is None:
            return False
        if self.cfg.chat_ids is not None and chat_id in self.cfg.chat_ids:
            return True
        if chat_id == self.cfg.chat_id or chat_id in self.cfg.allowed_user_ids:
            return True
        try:
            return self.runtime.default_context_for_chat(chat_id) is not None
        except Exception as exc:
            log.warning("telegram.chat_check_failed", error=str(exc))
            return False

    def sender_allowed(self, sender_id: int | None) -> bool:
        allowed = self.cfg.allowed_user_ids
        return not allowed or (sender_id is not None and sender_id in allowed)

    def accepts_callback(self, query: TelegramCallbackQuery) -> bool:
        if not self.chat_accepted(query.chat_id):
            log.info("update.ignored", reason="chat_not_allowed", chat_id=query.chat_id)
            return False
        if not self.sender_allowed(query.sender_id):
            log.info("update.ignored", reason="sender_not_allowed", sender_id=query.sender_id)
            return False
        return True

    def check_message(self, msg: TelegramIncomingMessage) -> Verdict:
        """``accept``, ``ignore``, or ``notify`` (an offline-backlog message to answer)."""
        if not self.chat_accepted(msg.chat_id):
            log.info("update.ignored", reason="chat_not_allowed", chat_id=msg.chat_id)
            return "ignore"
        if msg.sender_is_bot:
            return "ignore"
        if not self.sender_allowed(msg.sender_id):
            log.info("update.ignored", reason="sender_not_allowed", sender_id=msg.sender_id)
            return "ignore"
        if msg.date is not None and msg.date < int(self.started_at):
            policy = self.cfg.offline_backlog
            log.info(
                "update.backlog", policy=policy, chat_id=msg.chat_id, message_id=msg.message_id
            )
            if policy == "drop":
                return "ignore"
            if policy != "run":
                return "notify"
        return "accept"


__all__ = ["BACKLOG_NOTICE", "ChatGate"]
