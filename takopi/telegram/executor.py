"""``ctx.executor`` for command plugins, and the in-memory transport of capture runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from takopi.commands import RunRequest, RunResult
from takopi.context import RunContext
from takopi.logging import get_logger
from takopi.transport import MessageRef, RenderedMessage, SendOptions

from .runspec import RunSpec
from .types import TelegramIncomingMessage

if TYPE_CHECKING:
    from .loop import TelegramLoop

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

    def __init__(self, loop: TelegramLoop, msg: TelegramIncomingMessage) -> None:
        self._loop = loop
        self._msg = msg
        self.default_context: RunContext | None = loop.runtime.default_context_for_chat(msg.chat_id)

    async def send(
        self,
        message: RenderedMessage | str,
        *,
        reply_to: MessageRef | None = None,
        notify: bool = True,
    ) -> MessageRef | None:
        if isinstance(message, str):
            message = RenderedMessage(text=message)
        target = reply_to or MessageRef(
            channel_id=self._msg.chat_id,
            message_id=self._msg.message_id,
            thread_id=self._msg.thread_id,
        )
        return await self._loop.transport.send(
            channel_id=self._msg.chat_id,
            message=message,
            options=SendOptions(reply_to=target, notify=notify, thread_id=self._msg.thread_id),
        )

    async def run_one(self, request: RunRequest, *, mode: str = "emit") -> RunResult:
        loop = self._loop
        context = request.context or await loop.ambient_context(self._msg.chat_id)
        engine = request.engine or await loop.default_engine_for(self._msg.chat_id, context)
        spec = RunSpec(
            chat_id=self._msg.chat_id,
            user_msg_id=self._msg.message_id,
            text=request.prompt,
            thread_id=self._msg.thread_id,
            reply_to=None,
            resume_token=None,
            engine_override=engine,
            context=context,
            session_key=None,
        )
        if mode == "capture":
            capture = CaptureTransport()
            await loop.run_spec(spec, transport=capture)
            return RunResult(engine=engine, message=capture.last)
        await loop.run_spec(spec)
        return RunResult(engine=engine, message=None)

    async def run_many(
        self, requests: Any, *, mode: str = "emit", parallel: bool = False
    ) -> list[RunResult]:
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
