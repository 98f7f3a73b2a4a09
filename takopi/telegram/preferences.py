"""What a scope's settings resolve to: ambient context, engine, trigger mode and the
model/reasoning overrides of a run (chat preferences over the runtime's defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from takopi.context import RunContext

from .chat_prefs import ChatPrefsStore
from .scope import ChatScope

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
    """Resolves settings for a scope. Without a config path there is no store: runtime
    defaults only."""

    def __init__(self, runtime: Any, chat_prefs: ChatPrefsStore | None) -> None:
        self.runtime = runtime
        self.chat_prefs = chat_prefs

    async def ambient_context(self, scope: ChatScope) -> tuple[RunContext | None, str]:
        """The chat's ``/ctx`` binding, else the project bound to the chat; and its source."""
        if self.chat_prefs is not None:
            bound = await self.chat_prefs.get_context(scope.chat_id)
            if bound is not None:
                return bound, "bound"
        chat_ctx = self.runtime.default_context_for_chat(scope.chat_id)
        if chat_ctx is not None:
            return chat_ctx, "chat project"
        return None, "none"

    async def chat_default_engine(self, scope: ChatScope) -> str | None:
        if self.chat_prefs is None:
            return None
        value = await self.chat_prefs.get(scope.chat_id, "default_engine")
        return value if isinstance(value, str) and value else None

    async def engine_choice(
        self, scope: ChatScope, *, directive: str | None, context: RunContext | None
    ) -> EngineChoice:
        """directive > chat default > project default > global default."""
        if directive:
            return EngineChoice(directive, "directive")
        engines = set(self.runtime.engine_ids)
        chat_default = await self.chat_default_engine(scope)
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

    async def override(self, scope: ChatScope, engine: str, field: str) -> tuple[str | None, str]:
        """A model/reasoning override and its source (``chat default`` / ``no override``)."""
        if self.chat_prefs is not None:
            value = await self.chat_prefs.get_override(scope.chat_id, engine, field)
            if value:
                return value, "chat default"
        return None, "no override"

    async def run_overrides(self, scope: ChatScope, engine: str) -> RunOverrides:
        model, _ = await self.override(scope, engine, "model")
        reasoning, _ = await self.override(scope, engine, "reasoning")
        if reasoning and engine not in REASONING_SUPPORTED_ENGINES:
            return RunOverrides(model=model, reasoning=None, ignored_reasoning=reasoning)
        return RunOverrides(model=model, reasoning=reasoning)

    async def trigger_mode(self, scope: ChatScope) -> str:
        if self.chat_prefs is None:
            return "all"
        mode = await self.chat_prefs.get(scope.chat_id, "trigger_mode")
        return "mentions" if mode == "mentions" else "all"


__all__ = [
    "REASONING_LEVELS",
    "REASONING_SUPPORTED_ENGINES",
    "EngineChoice",
    "Preferences",
    "RunOverrides",
]
