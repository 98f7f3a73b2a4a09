"""``clirec``: a transport driven by files, recording what it sends.

``[transports.clirec] dir = "..."``. The test drops ``inbox/<n>.json`` files
``{"channel_id", "message_id", "text"}``; every send/edit/delete is appended to
``outbox.jsonl``; the first line is ``{"op": "ready"}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio

from takopi.api import (
    ExecBridgeConfig,
    IncomingMessage,
    MessageRef,
    RenderedMessage,
    SendOptions,
    SetupResult,
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


class RecordingTransport:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def close(self) -> None:
        return None

    async def send(
        self, *, channel_id: Any, message: RenderedMessage, options: SendOptions | None = None
    ) -> MessageRef | None:
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
        self.outbox.record({"op": "edit", "message_id": ref.message_id, "text": message.text})
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        self.outbox.record({"op": "delete", "message_id": ref.message_id})
        return True


class Recorder:
    id = "clirec"
    description = "test transport (inbox dir -> outbox jsonl)"

    def check_setup(self, engine_backend: Any, *, transport_override: str | None = None) -> Any:
        return SetupResult(issues=[], config_path=None)

    async def interactive_setup(self, *, force: bool) -> bool:
        return False

    def lock_token(self, *, transport_config: dict[str, Any], _config_path: Path) -> str | None:
        return str(transport_config.get("token") or "clirec-token")

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

    async def _main(self, transport_config: dict[str, Any], runtime: Any, notify: bool) -> None:
        base = Path(str(transport_config["dir"]))
        inbox = base / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        outbox = Outbox(base / "outbox.jsonl")
        transport = RecordingTransport(outbox)
        cfg = ExecBridgeConfig(
            transport=transport, presenter=MarkdownPresenter(), final_notify=notify
        )
        for delivery in runtime.pending_deliveries():
            outbox.record({"op": "delivery", **delivery})
            runtime.ack_delivery(delivery["delivery_id"])
        outbox.record({"op": "ready", "pid": os.getpid()})
        running: dict[Any, Any] = {}
        async with anyio.create_task_group() as tg:
            while True:
                for path in sorted(inbox.glob("*.json")):
                    try:
                        item = json.loads(path.read_text())
                    except ValueError:
                        continue  # half-written; next scan
                    path.unlink()
                    tg.start_soon(self._dispatch, item, runtime, cfg, running, outbox)
                await anyio.sleep(0.02)

    async def _dispatch(
        self, item: dict[str, Any], runtime: Any, cfg: Any, running: Any, outbox: Outbox
    ) -> None:
        try:
            resolved = runtime.resolve_message(text=item["text"], reply_text=None)
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
                    channel_id=item.get("channel_id", 1),
                    message_id=item.get("message_id", 1),
                    text=resolved.prompt,
                ),
                resume_token=resolved.resume_token,
                context=resolved.context,
                context_line=runtime.format_context_line(resolved.context),
                strip_resume_line=runtime.is_resume_line,
                running_tasks=running,
            )
        except Exception as exc:
            outbox.record({"op": "error", "error": f"{type(exc).__name__}: {exc}"})


RECORDER = Recorder()
