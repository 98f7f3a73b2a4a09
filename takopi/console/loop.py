"""The console chat loop: one line in, one agent run out.

Input syntax (one message per line; end a line with ``\\`` to continue it on the next):
- any text: a prompt (directives such as ``/codex`` or ``/myproject @branch`` work as in chat);
- a pasted resume line (e.g. ``codex resume abc123``) on its own continues that thread;
- ``/reply N <text>``: reply to message ``#N`` (continues the thread that message belongs to);
- ``/cancel [N]``: cancel the run whose progress message is ``#N`` (default: every running run);
- ``/help``; ``/quit`` or end of input: wait for running runs, then exit.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from takopi.config import ConfigError
from takopi.console.transport import CONSOLE_CHANNEL, ConsoleTransport
from takopi.directives import DirectiveError
from takopi.logging import get_logger
from takopi.presenter import MarkdownPresenter
from takopi.protocol.delivery import Delivery
from takopi.router import RunnerUnavailableError
from takopi.runner_bridge import ExecBridgeConfig, IncomingMessage, RunningTasks, handle_message
from takopi.transport import MessageRef, RenderedMessage, SendOptions
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

logger = get_logger(__name__)

HELP = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""


@dataclass(slots=True)
class ConsoleLoop:
    """Reads messages from ``inp`` and runs them through the takopi runtime."""

    runtime: Any
    inp: TextIO
    out: TextIO
    final_notify: bool = True
    transport: ConsoleTransport = field(init=False)
    running: RunningTasks = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.transport = ConsoleTransport(out=self.out)

    async def run(self) -> None:
        """Serve until end of input or ``/quit``; every started run finishes first."""
        cfg = ExecBridgeConfig(
            transport=self.transport,
            presenter=MarkdownPresenter(),
            final_notify=self.final_notify,
        )
        await self._deliver_pending()
        await self._say(self._banner())
        send, receive = anyio.create_memory_object_stream[str | None](16)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_input, send)
            tg.start_soon(self._collect_deliveries)
            await self._dispatch(receive, cfg, tg)

    def _banner(self) -> str:
        engines = ", ".join(self.runtime.available_engine_ids()) or "none"
        missing = self.runtime.missing_engine_ids()
        line = (
            f"takopi console · default engine `{self.runtime.default_engine}` · engines: {engines}"
        )
        if missing:
            line += f" (not installed: {', '.join(missing)})"
        return line + "\ntype a prompt and press enter; /help for commands"

    async def _say(self, text: str) -> None:
        await self.transport.send(
            channel_id=CONSOLE_CHANNEL,
            message=RenderedMessage(text=text),
            options=SendOptions(notify=False),
        )

    async def _read_input(self, send: MemoryObjectSendStream[str | None]) -> None:
        """Read lines on a worker thread (stdin reads cannot be awaited), joining ``\\``."""
        async with send:
            pending: list[str] = []
            while True:
                line = await anyio.to_thread.run_sync(self.inp.readline, abandon_on_cancel=True)
                if not line:
                    if pending:
                        await send.send("\n".join(pending))
                    await send.send(None)
                    return
                line = line.rstrip("\n")
                if line.endswith("\\"):
                    pending.append(line[:-1])
                    continue
                pending.append(line)
                await send.send("\n".join(pending))
                pending = []

    async def _dispatch(
        self,
        receive: MemoryObjectReceiveStream[str | None],
        cfg: ExecBridgeConfig,
        tg: TaskGroup,
    ) -> None:
        async with receive:
            async for text in receive:
                if text is None or text.strip() in {"/quit", "/exit"}:
                    break
                if not text.strip():
                    continue
                command = text.strip().split(maxsplit=1)[0].lower()
                if command == "/help":
                    await self._say(HELP)
                elif command == "/cancel":
                    await self._cancel(text)
                elif command == "/reply":
                    self._start_reply(text, cfg, tg)
                else:
                    tg.start_soon(self._run_message, cfg, text, None)
        # End of input: let running runs finish (they print their final answers), then stop
        # the reader thread's task.
        while self.running:
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()

    def _start_reply(self, text: str, cfg: ExecBridgeConfig, tg: TaskGroup) -> None:
        parts = text.strip().split(maxsplit=2)
        target = parts[1].lstrip("#") if len(parts) > 1 else ""
        if not target.isdigit():
            tg.start_soon(self._say, "usage: /reply N <text>")
            return
        tg.start_soon(self._run_message, cfg, parts[2] if len(parts) > 2 else "", int(target))

    async def _cancel(self, text: str) -> None:
        args = shlex.split(text)[1:] if text.count('"') % 2 == 0 else text.split()[1:]
        wanted = {a.lstrip("#") for a in args}
        hits = 0
        for ref, task in list(self.running.items()):
            if not wanted or str(ref.message_id) in wanted:
                task.cancel_requested.set()
                hits += 1
        await self._say("cancelling..." if hits else "nothing is currently running.")

    async def _run_message(self, cfg: ExecBridgeConfig, text: str, reply_id: int | None) -> None:
        message_id = self.transport.next_id()
        reply_text = self.transport.text_of(reply_id) if reply_id is not None else None
        if reply_id is not None and reply_text is None:
            await self._say(f"there is no message #{reply_id} to reply to.")
            return
        reply_ref = (
            MessageRef(channel_id=CONSOLE_CHANNEL, message_id=reply_id)
            if reply_id is not None
            else None
        )
        try:
            resolved = self.runtime.resolve_message(
                text=text, reply_text=reply_text, chat_id=CONSOLE_CHANNEL
            )
            entry = self.runtime.resolve_runner(
                resume_token=resolved.resume_token, engine_override=resolved.engine_override
            )
            if not entry.available:
                await self._say(f"error:\n{entry.issue or f'engine {entry.engine} unavailable'}")
                return
            cwd = self.runtime.resolve_run_cwd(resolved.context)
        except (DirectiveError, ConfigError, RunnerUnavailableError) as exc:
            await self._say(f"error:\n{exc}")
            return
        token = set_run_base_dir(cwd)
        try:
            await handle_message(
                cfg,
                runner=entry.runner,
                incoming=IncomingMessage(
                    channel_id=CONSOLE_CHANNEL,
                    message_id=message_id,
                    text=resolved.prompt,
                    reply_to=reply_ref,
                ),
                resume_token=resolved.resume_token,
                context=resolved.context,
                context_line=self.runtime.format_context_line(resolved.context),
                strip_resume_line=self.runtime.is_resume_line,
                running_tasks=self.running,
            )
        except Exception as exc:  # the loop must survive any single run
            logger.exception("console.run_failed", error=str(exc))
            await self._say(f"error:\n{exc}")
        finally:
            reset_run_base_dir(token)

    async def _collect_deliveries(self, interval: float = 3.0) -> None:
        """Runs that outlived a previous console can finish later: keep printing them."""
        if getattr(self.runtime, "pending_deliveries", None) is None:
            return
        while True:
            await anyio.sleep(interval)
            await self._deliver_pending()

    async def _deliver_pending(self) -> None:
        """Print outcomes the supervisor kept while no console was attached."""
        pending: Callable[[], list[Any]] | None = getattr(self.runtime, "pending_deliveries", None)
        ack: Callable[[str], Any] | None = getattr(self.runtime, "ack_delivery", None)
        if pending is None:
            return
        try:
            records = pending()
        except Exception as exc:
            logger.warning("console.pending_deliveries_failed", error=str(exc))
            return
        for record in records:
            delivery = Delivery.from_record(record)
            await self.transport.send(
                channel_id=CONSOLE_CHANNEL,
                message=RenderedMessage(text=delivery.text),
                options=SendOptions(notify=True),
            )
            if ack is not None:
                ack(delivery.delivery_id)


def run_console(runtime: Any, *, final_notify: bool = True) -> None:
    """Run the console loop on stdin/stdout until end of input."""
    anyio.run(
        ConsoleLoop(runtime=runtime, inp=sys.stdin, out=sys.stdout, final_notify=final_notify).run
    )
