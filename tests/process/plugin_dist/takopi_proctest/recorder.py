"""A transport that takes messages from an inbox directory and records what it sends.

``[transports.<id>] dir = "..."``. The test drops ``inbox-<id>/<n>.json`` files:
``{"op": "message", "channel_id", "message_id", "text", "reply_text"}``,
``{"op": "cancel"}`` (cancel every running run), ``{"op": "command", "text": "/echo hi", ...}``.
Everything sent/edited/deleted is appended to ``outbox-<id>.jsonl``; the first line is
``{"op": "ready"}`` after pending deliveries were taken (``{"op": "delivery", ...}``).

The CLI tests' ``clirec`` transport is this module too (``takopi_clitest/_recording.py`` is a
symlink to it), with the inbox and outbox names passed to :class:`Recorder`.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import anyio

from takopi.api import (
    CommandContext,
    CommandResult,
    ExecBridgeConfig,
    IncomingMessage,
    MessageRef,
    RenderedMessage,
    RunResult,
    SendOptions,
    SetupResult,
    get_command,
    handle_message,
)
from takopi.presenter import MarkdownPresenter


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_id = 1000

    def record(self, item: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(item, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _is_final(text: str) -> bool:
    return text.split(" ", 1)[0].strip("`") in ("done", "error", "cancelled")


class RecordingTransport:
    """``send_delay`` (seconds) makes every send/edit slow, like a paced chat API;
    ``final_delay`` only the final messages (``done``/``error``/``cancelled``)."""

    def __init__(self, outbox: Outbox, send_delay: float = 0.0, final_delay: float = 0.0) -> None:
        self.outbox = outbox
        self.send_delay = send_delay
        self.final_delay = final_delay

    async def _pace(self, text: str) -> None:
        delay = self.send_delay + (self.final_delay if _is_final(text) else 0.0)
        if delay:
            await anyio.sleep(delay)

    async def close(self) -> None:
        return None

    async def send(
        self, *, channel_id: Any, message: RenderedMessage, options: SendOptions | None = None
    ) -> MessageRef | None:
        await self._pace(message.text)
        self.outbox.next_id += 1
        ref = MessageRef(channel_id=channel_id, message_id=self.outbox.next_id)
        reply_to = options.reply_to.message_id if options and options.reply_to else None
        self.outbox.record(
            {
                "op": "send",
                "channel_id": channel_id,
                "message_id": ref.message_id,
                "reply_to": reply_to,
                "text": message.text,
            }
        )
        return ref

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef | None:
        await self._pace(message.text)
        self.outbox.record({"op": "edit", "message_id": ref.message_id, "text": message.text})
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        self.outbox.record({"op": "delete", "message_id": ref.message_id})
        return True


class Executor:
    def __init__(self, transport: RecordingTransport, channel_id: Any, message_id: Any) -> None:
        self.transport = transport
        self.channel_id = channel_id
        self.message_id = message_id

    async def send(self, message: Any, *, reply_to: Any = None, notify: bool = True) -> Any:
        if isinstance(message, str):
            message = RenderedMessage(text=message)
        return await self.transport.send(channel_id=self.channel_id, message=message)

    async def run_one(self, request: Any, *, mode: str = "emit") -> Any:
        return RunResult(engine="scripted", message=RenderedMessage(text="not supported"))

    async def run_many(self, requests: Any, *, mode: str = "emit", parallel: bool = False) -> Any:
        return [await self.run_one(r, mode=mode) for r in requests]


class Recorder:
    description = "test transport (inbox dir → outbox jsonl)"

    def __init__(
        self, transport_id: str, *, inbox: str | None = None, outbox: str | None = None
    ) -> None:
        self.id = transport_id
        self.inbox_name = inbox or f"inbox-{transport_id}"
        self.outbox_name = outbox or f"outbox-{transport_id}.jsonl"

    def check_setup(
        self, engine_backend: Any, *, transport_override: str | None = None
    ) -> SetupResult:
        return SetupResult(issues=[], config_path=Path("takopi.toml"))

    async def interactive_setup(self, *, force: bool) -> bool:
        return False

    def lock_token(self, *, transport_config: dict[str, Any], _config_path: Path) -> str | None:
        return str(transport_config.get("token") or f"{self.id}-token")

    def build_and_run(
        self,
        *,
        transport_config: dict[str, Any],
        config_path: Path,
        runtime: Any,
        final_notify: bool,
        default_engine_override: str | None,
    ) -> None:
        anyio.run(self._main, transport_config, runtime, final_notify)

    async def _main(
        self, transport_config: dict[str, Any], runtime: Any, final_notify: bool
    ) -> None:
        base = Path(str(transport_config["dir"]))
        inbox = base / self.inbox_name
        inbox.mkdir(parents=True, exist_ok=True)
        outbox = Outbox(base / self.outbox_name)
        transport = RecordingTransport(
            outbox,
            float(transport_config.get("send_delay") or 0),
            float(transport_config.get("final_delay") or 0),
        )
        cfg = ExecBridgeConfig(
            transport=transport, presenter=MarkdownPresenter(), final_notify=final_notify
        )
        self._deliver(runtime, outbox)
        outbox.record({"op": "ready", "pid": os.getpid()})
        running: dict[Any, Any] = {}
        ticks = 0
        async with anyio.create_task_group() as tg:
            while True:
                ticks += 1
                if ticks % 10 == 0:  # outcomes of runs that lost their consumer
                    self._deliver(runtime, outbox)
                for path in sorted(inbox.glob("*.json")):
                    try:
                        item = json.loads(path.read_text())
                    except ValueError:
                        continue  # half-written; next scan
                    path.unlink()
                    tg.start_soon(self._dispatch, item, runtime, cfg, transport, running, outbox)
                await anyio.sleep(0.02)

    def _deliver(self, runtime: Any, outbox: Outbox) -> None:
        for delivery in runtime.pending_deliveries():
            outbox.record({"op": "delivery", **delivery.to_dict()})
            runtime.ack_delivery(delivery.delivery_id)

    async def _dispatch(
        self,
        item: dict[str, Any],
        runtime: Any,
        cfg: Any,
        transport: Any,
        running: dict[Any, Any],
        outbox: Outbox,
    ) -> None:
        op = item.get("op", "message")
        try:
            if op == "slow":
                # Take a few events, then stall without reading (flow control must hold the
                # producer), then leave early (cancels the run).
                entry = runtime.resolve_runner(resume_token=None, engine_override=item["engine"])
                taken = 0
                events = entry.runner.run(item["text"], None)
                async for _event in events:
                    taken += 1
                    if taken == item.get("take", 10):
                        outbox.record({"op": "slow_stalled", "taken": taken})
                        await anyio.sleep(item.get("stall", 3.0))
                        break
                await events.aclose()
                outbox.record({"op": "slow_done", "taken": taken})
                return
            if op == "drain":
                # Consume a whole run as fast as possible (pipeline throughput).
                import time

                entry = runtime.resolve_runner(resume_token=None, engine_override=item["engine"])
                count = 0
                started = time.perf_counter()
                async for _event in entry.runner.run(item["text"], None):
                    count += 1
                elapsed = time.perf_counter() - started
                outbox.record({"op": "drain_done", "events": count, "seconds": elapsed})
                return
            if op == "settings":
                from takopi_proctest.probe import settings_probe

                outbox.record({"op": "settings", "probe": settings_probe()})
                return
            if op == "list_commands":
                from takopi.commands import list_command_ids

                outbox.record({"op": "list_commands", "ids": list_command_ids()})
                return
            if op == "command_ids":
                outbox.record({"op": "command_ids", "ids": runtime.command_ids()})
                return
            if op == "cancel":
                for task in list(running.values()):
                    task.cancel_requested.set()
                return
            channel_id = item.get("channel_id", 1)
            message_id = item.get("message_id", 1)
            text = item["text"]
            if op == "command":
                name, _, args_text = text.lstrip("/").partition(" ")
                backend = get_command(name, required=False)
                if backend is None:
                    outbox.record({"op": "command_missing", "command": name})
                    return
                ctx = CommandContext(
                    command=name,
                    text=text,
                    args_text=args_text,
                    args=tuple(shlex.split(args_text)),
                    message=MessageRef(channel_id=channel_id, message_id=message_id),
                    config_path=runtime.config_path,
                    plugin_config=runtime.plugin_config(name),
                    runtime=runtime,
                    executor=Executor(transport, channel_id, message_id),
                )
                result = await backend.handle(ctx)
                outbox.record(
                    {
                        "op": "command_result",
                        "text": result.text if isinstance(result, CommandResult) else None,
                    }
                )
                return
            resolved = runtime.resolve_message(text=text, reply_text=item.get("reply_text"))
            entry = runtime.resolve_runner(
                resume_token=resolved.resume_token, engine_override=resolved.engine_override
            )
            if not entry.available:
                outbox.record({"op": "unavailable", "engine": entry.engine, "issue": entry.issue})
                return
            await handle_message(
                cfg,
                runner=entry.runner,
                incoming=IncomingMessage(
                    channel_id=channel_id, message_id=message_id, text=resolved.prompt
                ),
                resume_token=resolved.resume_token,
                context=resolved.context,
                context_line=runtime.format_context_line(resolved.context),
                strip_resume_line=runtime.is_resume_line,
                running_tasks=running,
            )
        except Exception as exc:
            outbox.record({"op": "error", "error": f"{type(exc).__name__}: {exc}"})


RECORDER = Recorder("recorder")
RECORDER2 = Recorder("recorder2")
