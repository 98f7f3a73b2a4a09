"""Who may change settings: anyone in a private chat; in groups, the creator and
administrators (``getChatMember``). Each command has the reference's own refusal texts."""

from __future__ import annotations

from typing import Literal

from .client import BotClient
from .types import TelegramIncomingMessage

AdminCheck = Literal["ok", "denied", "no_sender", "failed"]
ADMIN_STATUSES = frozenset({"creator", "administrator"})

# command -> (not an admin, no sender, getChatMember failed)
REFUSALS: dict[str, tuple[str, str, str]] = {
    "agent": (
        "changing default engines is restricted to group admins.",
        "cannot verify sender for engine defaults.",
        "failed to verify engine permissions.",
    ),
    "model": (
        "changing model overrides is restricted to group admins.",
        "cannot verify sender for model overrides.",
        "failed to verify model override permissions.",
    ),
    "reasoning": (
        "changing reasoning overrides is restricted to group admins.",
        "cannot verify sender for reasoning overrides.",
        "failed to verify reasoning override permissions.",
    ),
    "trigger": (
        "changing trigger mode is restricted to group admins.",
        "cannot verify sender for trigger mode.",
        "failed to verify trigger mode permissions.",
    ),
}


async def check_admin(bot: BotClient, msg: TelegramIncomingMessage) -> AdminCheck:
    """``ok`` in private chats and for group creators/administrators."""
    if msg.is_private:
        return "ok"
    if msg.sender_id is None:
        return "no_sender"
    member = await bot.get_chat_member(msg.chat_id, msg.sender_id)
    if not isinstance(member, dict):
        return "failed"
    return "ok" if member.get("status") in ADMIN_STATUSES else "denied"


def refusal(command: str, check: AdminCheck) -> str:
    """The text for a refused change (``check`` is not ``ok``)."""
    denied, no_sender, failed = REFUSALS[command]
    return {"denied": denied, "no_sender": no_sender}.get(check, failed)


__all__ = ["ADMIN_STATUSES", "AdminCheck", "check_admin", "refusal"]
