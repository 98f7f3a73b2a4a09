"""What a run needs once a message is resolved, and the resume-line visibility wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from takopi.context import RunContext
from takopi.model import Action, ActionEvent, ResumeToken
from takopi.transport import MessageRef

from .scope import ChatScope


def reasoning_ignored_note(engine: str) -> ActionEvent:
    """The progress note of a run whose reasoning override its engine cannot use."""
    return ActionEvent(
        engine=engine,
        action=Action(
            id="takopi.reasoning.unsupported",
            kind="warning",
            title=f"reasoning override is not supported for `{engine}`; ignoring.",
        ),
        phase="completed",
        ok=True,
        level="warning",
    )


class ResumeLineProxy:
    """Wraps a runner so that ``format_resume`` returns ``""`` when resume lines are hidden,
    and so that a run starts with the transport's own ``notes`` (progress notes such as an
    ignored reasoning override)."""

    def __init__(self, runner: Any, *, show: bool, notes: Sequence[ActionEvent] = ()) -> None:
        self._runner = runner
        self._show = show
        self._notes = tuple(notes)
        self.engine = runner.engine

    def format_resume(self, token: ResumeToken) -> str:
        return str(self._runner.format_resume(token)) if self._show else ""

    def is_resume_line(self, line: str) -> bool:
        return bool(self._runner.is_resume_line(line))

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        return self._runner.extract_resume(text)  # type: ignore[no-any-return]

    def run(self, prompt: str, resume: ResumeToken | None) -> Any:
        if not self._notes:
            return self._runner.run(prompt, resume)
        return self._noted_run(prompt, resume)

    async def _noted_run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[Any]:
        for note in self._notes:
            yield note
        async with aclosing(self._runner.run(prompt, resume)) as events:
            async for event in events:
                yield event

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A run to start: who asked, where, on which engine/thread."""

    chat_id: int
    user_msg_id: int
    text: str
    thread_id: int | None
    reply_to: MessageRef | None
    resume_token: ResumeToken | None
    engine_override: str | None
    context: RunContext | None
    session_key: str | None
    scope: ChatScope | None = None

    @property
    def chat_scope(self) -> ChatScope:
        return self.scope or ChatScope(self.chat_id, self.thread_id)


__all__ = ["ResumeLineProxy", "RunSpec", "reasoning_ignored_note"]
