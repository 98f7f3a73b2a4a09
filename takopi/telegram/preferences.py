"""What a scope's settings resolve to: ambient context, engine, trigger mode and the
model/reasoning overrides of a run — topic settings over chat preferences over the
runtime's defaults, per field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from takopi.context import RunContext

from .chat_prefs import ChatPrefsStore
from .scope import ChatScope
from .topic_state import TopicStateStore

REASONING_LEVELS = ("minimal", "low", "medium", "high", "xhigh")
REASONING_SUPPORTED_ENGINES = frozenset({"codex"})


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """The engine a new run would use, and why."""

    engine: str
    source: str


@dataclass(frozen=True, slots=True)
class RunOverrides:
    """Model/reasoning overrides for one run; ``ignored_reasoning`` is set when a reasoning
    override exists but the engine does not support it."""

    model: str | None = None
    reasoning: str | None = None
    ignored_reasoning: str | None = None


class Preferences:
    """Resolves settings for a scope. Without a config path there are no stores: runtime
    defaults only."""

    def __init__(
        self,
        runtime: Any,
        chat_prefs: ChatPrefsStore | None,
        topics: TopicStateStore | None = None,
    ) -> None:
        self.runtime = runtime
        self.chat_prefs = chat_prefs
        self.topics = topics

    def _topic(self, scope: ChatScope) -> str | None:
        return scope.topic_key if self.topics is not None else None

    async def topic_context(self, scope: ChatScope) -> RunContext | None:
        """The topic's binding merged with its chat's project (a branch-only binding in a
        project chat takes the chat's project)."""
        key = self._topic(scope)
        if key is None or self.topics is None:
            return None
        bound = await self.topics.get_context(key)
        if bound is None:
            return None
        if not bound.project:
            chat_ctx = self.runtime.default_context_for_chat(scope.chat_id)
            if chat_ctx is None:
                return None
            return RunContext(project=chat_ctx.project, branch=bound.branch)
        return bound

    async def ambient_context(self, scope: ChatScope) -> tuple[RunContext | None, str]:
        """Topic binding, else the chat's ``/ctx`` binding, else the chat's project."""
        topic_ctx = await self.topic_context(scope)
        if topic_ctx is not None:
            return topic_ctx, "topic"
        if self.chat_prefs is not None:
            bound = await self.chat_prefs.get_context(scope.chat_id)
            if bound is not None:
                return bound, "bound"
        chat_ctx = self.runtime.default_context_for_chat(scope.chat_id)
        if chat_ctx is not None:
            return chat_ctx, "chat project"
        return None, "none"

    async def topic_value(self, scope: ChatScope, field: str) -> str | None:
        key = self._topic(scope)
        if key is None or self.topics is None:
            return None
        value = await self.topics.get(key, field)
        return value if isinstance(value, str) and value else None

    async def chat_value(self, scope: ChatScope, field: str) -> str | None:
        if self.chat_prefs is None:
            return None
        value = await self.chat_prefs.get(scope.chat_id, field)
        return value if isinstance(value, str) and value else None

    async def engine_choice(
        self, scope: ChatScope, *, directive: str | None, context: RunContext | None
    ) -> EngineChoice:
        """directive > topic default > chat default > project default > global default."""
        if directive:
            return EngineChoice(directive, "directive")
        engines = set(self.runtime.engine_ids)
        topic_default = await self.topic_value(scope, "default_engine")
        if topic_default and topic_default in engines:
            return EngineChoice(topic_default, "topic default")
        chat_default = await self.chat_value(scope, "default_engine")
        if chat_default and chat_default in engines:
            return EngineChoice(chat_default, "chat default")
        project = context.project if context is not None else None
        project_engine = self.runtime.project_default_engine(project) if project else None
        if project_engine:
            return EngineChoice(project_engine, "project default")
        return EngineChoice(self.runtime.default_engine, "global default")

    async def default_engine(self, scope: ChatScope, context: RunContext | None) -> str:
        """The engine a new run in ``scope`` uses without a directive."""
        return (await self.engine_choice(scope, directive=None, context=context)).engine

    async def override_layers(
        self, scope: ChatScope, engine: str, field: str
    ) -> tuple[str | None, str | None]:
        """The (topic, chat) values of a model/reasoning override."""
        topic = None
        key = self._topic(scope)
        if key is not None and self.topics is not None:
            topic = await self.topics.get_override(key, engine, field)
        chat = None
        if self.chat_prefs is not None:
            chat = await self.chat_prefs.get_override(scope.chat_id, engine, field)
        return topic, chat

    async def override(self, scope: ChatScope, engine: str, field: str) -> tuple[str | None, str]:
        """A model/reasoning override and its source: topic > chat, per field."""
        topic, chat = await self.override_layers(scope, engine, field)
        if topic:
            return topic, "topic override"
        if chat:
            return chat, "chat default"
        return None, "no override"

    async def run_overrides(self, scope: ChatScope, engine: str) -> RunOverrides:
        model, _ = await self.override(scope, engine, "model")
        reasoning, _ = await self.override(scope, engine, "reasoning")
        if reasoning and engine not in REASONING_SUPPORTED_ENGINES:
            return RunOverrides(model=model, reasoning=None, ignored_reasoning=reasoning)
        return RunOverrides(model=model, reasoning=reasoning)

    async def trigger_layers(self, scope: ChatScope) -> tuple[str | None, str | None]:
        """The (topic, chat) trigger modes (``mentions`` or None)."""
        topic = await self.topic_value(scope, "trigger_mode")
        chat = await self.chat_value(scope, "trigger_mode")
        return (
            "mentions" if topic == "mentions" else None,
            "mentions" if chat == "mentions" else None,
        )

    async def trigger_mode(self, scope: ChatScope) -> str:
        """``mentions`` when the topic or the chat says so, else ``all``."""
        topic, chat = await self.trigger_layers(scope)
        return "mentions" if topic or chat else "all"


__all__ = [
    "REASONING_LEVELS",
    "REASONING_SUPPORTED_ENGINES",
    "EngineChoice",
    "Preferences",
    "RunOverrides",
]
