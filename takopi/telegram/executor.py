"""``ctx.executor`` for command plugins, and the in-memory transport of capture runs.

A run a plugin starts (``run_one``) is always a new thread. What it omits comes from where the
command was sent, as for a plain message there: the context from the topic binding, the chat's
``/ctx`` binding or the chat's project; the engine from the topic/chat/project default; the
model/reasoning overrides of that scope. In ``emit`` mode it is a stateful run like any other:
its thread becomes the topic's (or the chat's, with ``session_mode = "chat"``) stored session,
and its resume line is hidden there unless ``show_resume_line = true``. ``capture`` runs post
nothing and keep no session.
"""

from __future__ import annotations

from typing import Any

import anyio

from takopi.commands import RunRequest, RunResult
from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .preferences import Preferences
from .replies import reply_options
from .runs import RunLauncher
from .runspec import RunSpec
from .scope import ChatScope
from .sessions import Sessions
from .types import TelegramIncomingMessage

log = get_logger(__name__)


class CaptureTransport:
    """An in-memory transport for ``run_one(mode="capture")``: remembers the last message."""

    def __init__(self) -> None:
        self.last: RenderedMessage | None = None
        self._next = 0

    async def close(self) -> None:
        return None

    async def send(
        self, *, channel_id: Any, message: RenderedMessage, options: SendOptions | None = None
    ) -> MessageRef:
        self._next += 1
        self.last = message
        return MessageRef(channel_id=channel_id, message_id=f"capture-{self._next}")

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef:
        self.last = message
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        return True


class TelegramCommandExecutor:
    """``ctx.executor`` for plugin commands: talks to the command's chat, runs engines."""

    def __init__(
        self,
        *,
        runs: RunLauncher,
        preferences: Preferences,
        sessions: Sessions,
        msg: TelegramIncomingMessage,
        scope: ChatScope,
    ) -> None:
        self._runs = runs
        self._preferences = preferences
        self._sessions = sessions
        self._msg = msg
        self._scope = scope
        self.default_context: RunContext | None = runs.runtime.default_context_for_chat(msg.chat_id)

    async def send(
        self,
        message: RenderedMessage | str,
        *,
        reply_to: MessageRef | None = None,
        notify: bool = True,
    ) -> MessageRef | None:
        if isinstance(message, str):
            message = RenderedMessage(text=message)
        return await self._runs.transport.send(  # type: ignore[no-any-return]
            channel_id=self._msg.chat_id,
            message=message,
            options=reply_options(self._msg, notify=notify, reply_to=reply_to),
        )

    async def run_one(self, request: RunRequest, *, mode: str = "emit") -> RunResult:
        """Run ``request`` on a new thread (see module docstring); ``capture`` returns the
        final message instead of posting it."""
        context = request.context or (await self._preferences.ambient_context(self._scope))[0]
        engine = request.engine or await self._preferences.default_engine(self._scope, context)
        capture = mode == "capture"
        spec = RunSpec(
            chat_id=self._msg.chat_id,
            user_msg_id=self._msg.message_id,
            text=request.prompt,
            thread_id=self._msg.thread_id,
            reply_to=None,
            resume_token=None,
            engine_override=engine,
            context=context,
            session_key=None if capture else self._sessions.key_for(self._msg, self._scope),
            scope=self._scope,
        )
        if capture:
            memory = CaptureTransport()
            await self._runs.run_spec(spec, transport=memory)
            return RunResult(engine=engine, message=memory.last)
        await self._runs.run_spec(spec)
        return RunResult(engine=engine, message=None)

    async def run_many(
        self, requests: Any, *, mode: str = "emit", parallel: bool = False
    ) -> list[RunResult]:
        """``run_one`` for each request: one after the other (an error propagates), or all at
        once (results in request order; a request that fails is logged and left out)."""
        requests = list(requests)
        if not parallel:
            return [await self.run_one(r, mode=mode) for r in requests]
        results: list[RunResult | None] = [None] * len(requests)

        async def one(i: int, request: RunRequest) -> None:
            try:
                results[i] = await self.run_one(request, mode=mode)
            except Exception as exc:
                log.warning("telegram.executor.run_failed", error=str(exc))

        async with anyio.create_task_group() as tg:
            for i, request in enumerate(requests):
                tg.start_soon(one, i, request)
        return [r for r in results if r is not None]


__all__ = ["CaptureTransport", "TelegramCommandExecutor"]
