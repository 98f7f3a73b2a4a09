"""Where a message lives: its chat and, in a managed forum topic, its topic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatScope:
    """A chat, or a forum topic of it that takopi manages (``topics.enabled`` and the chat in
    ``topics.scope``). Settings and sessions of a topic scope live in the topic state."""

    chat_id: int
    thread_id: int | None = None
    topic: bool = False

    @property
    def topic_key(self) -> str | None:
        """``<chat_id>:<thread_id>`` for a managed topic (the topics state-file key)."""
        if not self.topic or self.thread_id is None:
            return None
        return f"{self.chat_id}:{self.thread_id}"


__all__ = ["ChatScope"]
