"""Forum topics: which chats takopi manages topics in (``topics.scope``), the scope of a
message, and the startup validation of those chats.

Scope: ``main`` ⇒ the configured chat; ``projects`` ⇒ the chats bound to projects
(``projects.<a>.chat_id``); ``all`` ⇒ both; ``auto`` ⇒ ``projects`` when any project has a
chat, else ``main``. A message is in a managed topic when topics are enabled, its chat is in
scope and it carries a ``message_thread_id``.

Validation (fatal at startup, like the reference): every chat in scope must be a forum
supergroup where the bot is the creator, or an administrator with ``can_manage_topics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from takopi.config import ConfigError
from takopi.logging import get_logger

from .client_api import TelegramError
from .scope import ChatScope

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TopicsCheck:
    """Outcome of validating one chat for forum topics."""

    ok: bool
    detail: str


async def check_topics_chat(api: Any, chat_id: int, bot_id: int) -> TopicsCheck:
    """A forum supergroup where the bot is admin with "manage topics" (or the creator).

    ``api`` is a :class:`BotApi` (raises) or a client returning None on errors."""
    try:
        chat = await api.get_chat(chat_id)
    except TelegramError as exc:
        return TopicsCheck(False, f"chat {chat_id} unreachable: {exc.description}")
    if not chat:
        return TopicsCheck(False, f"chat {chat_id} unreachable")
    if chat.get("type") != "supergroup":
        kind = chat.get("type", "unknown")
        return TopicsCheck(False, f"chat {chat_id} is a {kind}, topics need a supergroup")
    if not chat.get("is_forum"):
        return TopicsCheck(False, f"topics are not enabled in chat {chat_id}")
    try:
        member = await api.get_chat_member(chat_id, bot_id)
    except TelegramError as exc:
        return TopicsCheck(False, f"cannot read the bot's rights in {chat_id}: {exc.description}")
    status = (member or {}).get("status")
    if status == "creator":
        return TopicsCheck(True, f"chat {chat_id}")
    if status == "administrator" and (member or {}).get("can_manage_topics"):
        return TopicsCheck(True, f"chat {chat_id}")
    return TopicsCheck(
        False, f"the bot must be an admin with 'manage topics' in chat {chat_id} (is {status})"
    )


def project_chat_ids(runtime: Any) -> list[int]:
    """Chats bound to projects (``projects.<alias>.chat_id``)."""
    try:
        projects = runtime._projects  # the reference's reach-through, proxied in workers
        chat_map = getattr(projects, "chat_map", None) or {}
        return sorted(int(c) for c in chat_map)
    except Exception as exc:
        log.warning("telegram.topics.project_chats_failed", error=str(exc))
        return []


class TopicScope:
    """Which chats have managed topics (see module docstring)."""

    def __init__(self, *, enabled: bool, scope: str, main_chat_id: int, runtime: Any) -> None:
        self.enabled = enabled
        self.scope = scope
        self.main_chat_id = main_chat_id
        self.runtime = runtime
        self._cache: tuple[Any, frozenset[int], str] | None = None

    def _resolve(self) -> tuple[frozenset[int], str]:
        revision = getattr(self.runtime, "revision", None)
        if self._cache is not None and revision is not None and self._cache[0] == revision:
            return self._cache[1], self._cache[2]
        project_chats = project_chat_ids(self.runtime)
        effective = self.scope
        if effective == "auto":
            effective = "projects" if project_chats else "main"
        chats: set[int] = set()
        if effective in ("main", "all"):
            chats.add(self.main_chat_id)
        if effective in ("projects", "all"):
            chats.update(project_chats)
        result = frozenset(chats)
        self._cache = (revision, result, effective)
        return result, effective

    @property
    def effective_scope(self) -> str:
        """``main``, ``projects`` or ``all`` (``auto`` resolved)."""
        return self._resolve()[1]

    def label(self) -> str:
        """``auto (main)`` / ``projects``… (startup message, ``/ctx``)."""
        if self.scope == "auto":
            return f"auto ({self.effective_scope})"
        return self.scope

    def chat_ids(self) -> frozenset[int]:
        return self._resolve()[0] if self.enabled else frozenset()

    def in_scope(self, chat_id: int) -> bool:
        return self.enabled and chat_id in self.chat_ids()

    def is_main_chat(self, chat_id: int) -> bool:
        return chat_id == self.main_chat_id

    def scope_for(self, chat_id: int, thread_id: int | None) -> ChatScope:
        topic = thread_id is not None and self.in_scope(chat_id)
        return ChatScope(chat_id, thread_id, topic=topic)

    async def validate(self, bot: Any) -> None:
        """Raise :class:`ConfigError` unless every chat in scope can host managed topics."""
        if not self.enabled:
            return
        me = await bot.get_me()
        if not me or not isinstance(me.get("id"), int):
            raise ConfigError("topics: cannot validate the forum chats (getMe failed).")
        chats = sorted(self.chat_ids())
        if not chats:
            raise ConfigError(
                f"topics.scope = {self.scope!r} but no chat is in scope "
                '(set projects.<alias>.chat_id, or use scope = "main").'
            )
        for chat_id in chats:
            result = await check_topics_chat(bot, chat_id, int(me["id"]))
            if not result.ok:
                raise ConfigError(f"topics are enabled but {result.detail}.")
        log.info("telegram.topics.validated", chats=chats, scope=self.label())


__all__ = ["TopicScope", "TopicsCheck", "check_topics_chat", "project_chat_ids"]
