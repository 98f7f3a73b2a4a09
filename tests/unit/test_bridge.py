"""handle_message with a recording in-memory transport and real runners (behavior.md §1.7/§1.8).

Runners are the scripted in-process ScriptRunner (for deterministic interleavings) and a real
JSONL subprocess runner (``script_runner`` fixture from tests/unit/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from takopi.context import RunContext
from takopi.events import EventFactory
from takopi.model import ResumeToken, StartedEvent, TakopiEvent
from takopi.presenter import MarkdownPresenter
from takopi.runner_bridge import (
    ExecBridgeConfig,
    IncomingMessage,
    RunningTask,
    RunningTasks,
    RunOrigin,
    current_run_origin,
    format_error,
    handle_message,
    send_runner_unavailable,
)
from takopi.runners.mock import Emit, Raise, Return, ScriptRunner, Wait
from takopi.transport import MessageRef, RenderedMessage, SendOptions
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

F = EventFactory("codex")
USER = MessageRef(channel_id=42, message_id=7)


@dataclass
class Op:
    kind: str
    ref: MessageRef | None
    text: str | None = None
    options: SendOptions | None = None
    wait: bool | None = None


@dataclass
class RecordingTransport:
    """In-memory transport: keeps every call and the current text of each message."""

    ops: list[Op] = field(default_factory=list)
    messages: dict[Any, str] = field(default_factory=dict)
    fail_sends: int = 0
    fail_edits: bool = False
    next_id: int = 100

    async def send(
        self, *, channel_id: Any, message: RenderedMessage, options: SendOptions | None = None
    ) -> MessageRef | None:
        if self.fail_sends > 0:
            self.fail_sends -= 1
            self.ops.append(Op("send-failed", None, message.text, options))
            return None
        self.next_id += 1
        ref = MessageRef(channel_id=channel_id, message_id=self.next_id)
        self.messages[self.next_id] = message.text
        self.ops.append(Op("send", ref, message.text, options))
        return ref

    async def edit(
        self, *, ref: MessageRef, message: RenderedMessage, wait: bool = True
    ) -> MessageRef | None:
        if self.fail_edits or ref.message_id not in self.messages:
            self.ops.append(Op("edit-failed", ref, message.text, wait=wait))
            return None
        self.messages[ref.message_id] = message.text
        self.ops.append(Op("edit", ref, message.text, wait=wait))
        return ref

    async def delete(self, *, ref: MessageRef) -> bool:
        self.ops.append(Op("delete", ref))
        return self.messages.pop(ref.message_id, None) is not None

    async def close(self) -> None:
        return None

    def kinds(self) -> list[str]:
        return [op.kind for op in self.ops]

    def of(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]


def frozen_clock() -> float:
    return 0.0


def cfg_for(transport: RecordingTransport, *, final_notify: bool = True) -> ExecBridgeConfig:
    return ExecBridgeConfig(
        transport=transport, presenter=MarkdownPresenter(), final_notify=final_notify
    )


def incoming(text: str = "do it", thread_id: int | None = None) -> IncomingMessage:
    return IncomingMessage(channel_id=42, message_id=7, text=text, thread_id=thread_id)


async def drive(
    transport: RecordingTransport,
    runner: Any,
    *,
    text: str = "do it",
    thread_id: int | None = None,
    resume_token: ResumeToken | None = None,
    final_notify: bool = True,
    **kwargs: Any,
) -> None:
    """``handle_message`` for the usual incoming message, with the frozen clock."""
    await handle_message(
        cfg_for(transport, final_notify=final_notify),
        runner=runner,
        incoming=incoming(text, thread_id=thread_id),
        resume_token=resume_token,
        clock=frozen_clock,
        **kwargs,
    )


# -- the happy path --------------------------------------------------------------------------


async def test_progress_then_final_with_final_notify() -> None:
    transport = RecordingTransport()
    runner = ScriptRunner(
        [
            Emit(F.action_started(action_id="1", kind="command", title="ls")),
            Emit(F.action_completed(action_id="1", kind="command", title="ls", ok=True)),
            Return(answer="all done"),
        ],
        engine="codex",
        resume_value="s-1",
    )
    await drive(transport, runner, thread_id=9, context_line="`ctx: web`")
    first = transport.ops[0]
    assert first.kind == "send"
    assert first.text == "starting · codex · 0s\n\n`ctx: web`"
    assert first.options == SendOptions(reply_to=USER, notify=False, thread_id=9)
    progress = first.ref
    assert progress is not None
    for op in transport.of("edit"):
        assert op.ref == progress and op.wait is False
    final = transport.of("send")[-1]
    assert (
        final.text == "done · codex · 0s · step 1\n\nall done\n\n`ctx: web`  \n`codex resume s-1`"
    )
    assert final.options == SendOptions(reply_to=USER, notify=True, replace=progress, thread_id=9)
    assert transport.ops[-1] == Op("delete", progress)
    assert progress.message_id not in transport.messages
    assert runner.calls[0].prompt == "do it"


async def test_final_notify_off_edits_progress_in_place() -> None:
    transport = RecordingTransport()
    runner = ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-2")
    await drive(transport, runner, final_notify=False)
    assert len(transport.of("send")) == 1
    assert transport.of("delete") == []
    progress = transport.ops[0].ref
    assert progress is not None
    last = transport.ops[-1]
    assert (last.kind, last.ref, last.wait) == ("edit", progress, True)
    assert (
        transport.messages[progress.message_id] == "done · codex · 0s\n\nok\n\n`codex resume s-2`"
    )


async def test_final_falls_back_to_a_new_message_when_the_edit_fails() -> None:
    transport = RecordingTransport(fail_edits=True)
    runner = ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-3")
    await drive(transport, runner, final_notify=False)
    sends = transport.of("send")
    assert len(sends) == 2
    assert sends[1].text == "done · codex · 0s\n\nok\n\n`codex resume s-3`"
    assert sends[1].options is not None and sends[1].options.notify is False
    assert transport.ops[-1].kind == "delete"


async def test_progress_send_failure_still_delivers_the_final() -> None:
    transport = RecordingTransport(fail_sends=1)
    runner = ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-4")
    await drive(transport, runner)
    assert transport.kinds() == ["send-failed", "send"]
    final = transport.of("send")[0]
    assert final.options == SendOptions(reply_to=USER, notify=True, replace=None)


# -- edit cadence ----------------------------------------------------------------------------


async def test_unchanged_renders_are_not_resent() -> None:
    transport = RecordingTransport()
    gates = [anyio.Event() for _ in range(3)]
    turn = F.action_started(action_id="t", kind="turn", title="turn")
    runner = ScriptRunner(
        [
            Emit(F.action_started(action_id="a", kind="tool", title="read")),
            Wait(gates[0]),
            Emit(F.action_updated(action_id="a", kind="tool", title="read")),
            Wait(gates[1]),
            # same render as before (↻ again) and an ignored turn action: no edit expected
            Emit(F.action_updated(action_id="a", kind="tool", title="read")),
            Emit(turn),
            Wait(gates[2]),
            Return(answer="fin"),
        ],
        engine="codex",
        resume_value="s-5",
    )

    async def open_gates() -> None:
        for gate in gates:
            await anyio.wait_all_tasks_blocked()
            gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_gates)
        await drive(transport, runner, final_notify=False)
    edits = [op.text for op in transport.of("edit")]
    assert edits == [
        "working · codex · 0s · step 1\n\n▸ tool: read\n\n`codex resume s-5`",
        "working · codex · 0s · step 1\n\n↻ tool: read\n\n`codex resume s-5`",
        "done · codex · 0s · step 1\n\nfin\n\n`codex resume s-5`",
    ]


async def test_elapsed_comes_from_the_injected_clock() -> None:
    now = [100.0]

    def clock() -> float:
        return now[0]

    def advance(value: float) -> None:
        now[0] = value

    transport = RecordingTransport()
    runner = ScriptRunner(
        [
            Emit(F.action_started(action_id="a", kind="note", title="plan"), at=100.0 + 75),
            Emit(F.action_completed(action_id="a", kind="note", title="plan", ok=True), at=3700.0),
            Return(answer="fin"),
        ],
        engine="codex",
        resume_value="s-6",
        advance=advance,
    )
    await handle_message(
        cfg_for(transport), runner=runner, incoming=incoming(), resume_token=None, clock=clock
    )
    assert transport.ops[0].text == "starting · codex · 0s"
    final = transport.of("send")[-1].text
    assert final is not None and final.startswith("done · codex · 1h 00m · step 1\n\nfin")


# -- resume handling -------------------------------------------------------------------------


async def test_resume_lines_are_stripped_and_resume_line_is_kept() -> None:
    transport = RecordingTransport()
    token = ResumeToken(engine="codex", value="old-7")
    runner = ScriptRunner([Return(answer="again")], engine="codex")
    await drive(transport, runner, text="`codex resume old-7`\nplease go on", resume_token=token)
    assert runner.calls[0].prompt == "please go on"
    assert runner.calls[0].resume == token
    assert transport.of("send")[-1].text == "done · codex · 0s\n\nagain\n\n`codex resume old-7`"


async def test_only_resume_line_becomes_continue_with_custom_predicate() -> None:
    transport = RecordingTransport()
    runner = ScriptRunner([Return(answer="x")], engine="codex")
    await drive(
        transport,
        runner,
        text="claude --resume abc",
        resume_token=ResumeToken("codex", "t"),
        strip_resume_line=lambda line: line.startswith("claude --resume"),
    )
    assert runner.calls[0].prompt == "continue"


async def test_on_thread_known_running_tasks_and_run_origin() -> None:
    transport = RecordingTransport()
    running: RunningTasks = {}
    gate = anyio.Event()
    seen: dict[str, Any] = {}

    async def on_thread_known(token: ResumeToken, done: anyio.Event) -> None:
        seen["token"] = token
        seen["done"] = done
        seen["done_at_call"] = done.is_set()

    @dataclass(eq=False)
    class OriginProbe(ScriptRunner):
        async def run_impl(
            self, prompt: str, resume: ResumeToken | None
        ) -> AsyncIterator[TakopiEvent]:
            seen["origin"] = current_run_origin.get()
            async for event in ScriptRunner.run_impl(self, prompt, resume):
                yield event

    runner = OriginProbe([Wait(gate), Return(answer="ok")], engine="codex", resume_value="s-8")

    async def observe() -> None:
        await wait_until_async(
            lambda: bool(running) and next(iter(running.values())).resume is not None
        )
        (ref, task) = next(iter(running.items()))
        seen["ref"] = ref
        seen["task"] = task
        assert task.resume_ready.is_set()
        assert task.context == RunContext(project="web")
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(observe)
        await drive(
            transport,
            runner,
            thread_id=3,
            context=RunContext(project="web"),
            context_line="`ctx: web`",
            running_tasks=running,
            on_thread_known=on_thread_known,
        )
    progress = transport.ops[0].ref
    assert seen["ref"] == progress
    assert seen["token"] == ResumeToken("codex", "s-8")
    assert seen["done_at_call"] is False
    assert seen["done"].is_set()
    assert isinstance(seen["task"], RunningTask) and seen["task"].done.is_set()
    assert running == {}
    assert seen["origin"] == RunOrigin(
        channel_id=42, message_id=7, thread_id=3, progress_ref=progress, context_line="`ctx: web`"
    )
    assert current_run_origin.get() is None


async def test_existing_progress_placeholder_is_reused() -> None:
    transport = RecordingTransport()
    placeholder = await transport.send(
        channel_id=42, message=RenderedMessage("queued · codex · 0s"), options=None
    )
    assert placeholder is not None
    runner = ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-9")
    await drive(transport, runner, progress_ref=placeholder)
    assert transport.ops[1] == Op("edit", placeholder, "starting · codex · 0s", wait=True)
    assert transport.ops[-1] == Op("delete", placeholder)
    assert len(transport.of("send")) == 2  # placeholder + final


# -- failures and cancellation ---------------------------------------------------------------


async def test_runner_exception_is_an_error_with_resume_line() -> None:
    transport = RecordingTransport()
    runner = ScriptRunner(
        [
            Emit(F.action_started(action_id="a", kind="command", title="make")),
            Raise(ValueError("engine exploded")),
        ],
        engine="codex",
        resume_value="s-10",
    )
    await drive(transport, runner)
    progress = transport.ops[0].ref
    assert progress is not None
    assert len(transport.of("send")) == 1
    assert transport.of("delete") == []
    assert transport.messages[progress.message_id] == (
        "error · codex · 0s · step 1\n\nengine exploded\n\n`codex resume s-10`"
    )


async def test_completed_not_ok_and_empty_answer_are_errors() -> None:
    transport = RecordingTransport()
    runner = ScriptRunner(
        [Emit(F.completed(ok=False, answer="partial", error="rate limited"))],
        engine="codex",
        resume_value="s-11",
    )
    await drive(transport, runner)
    assert transport.of("send")[-1].text == (
        "error · codex · 0s\n\npartial\n\nrate limited\n\n`codex resume s-11`"
    )
    transport = RecordingTransport()
    runner = ScriptRunner([Return(answer="   ")], engine="codex", resume_value="s-12")
    await drive(transport, runner)
    assert transport.of("send")[-1].text == "error · codex · 0s\n\n`codex resume s-12`"


async def test_missing_completed_event_is_an_error() -> None:
    @dataclass(eq=False)
    class NoCompletion(ScriptRunner):
        async def run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
            yield StartedEvent(engine="codex", resume=ResumeToken("codex", "s-13"))

    transport = RecordingTransport()
    await drive(transport, NoCompletion(engine="codex"))
    progress = transport.ops[0].ref
    assert progress is not None
    assert transport.messages[progress.message_id] == (
        "error · codex · 0s\n\nrunner finished without a completed event\n\n`codex resume s-13`"
    )


def test_format_error_flattens_groups_and_drops_cancellation() -> None:
    group = ExceptionGroup("outer", [ValueError("a"), ExceptionGroup("in", [KeyError("b")])])
    assert format_error(group) == "a\n'b'"
    assert format_error(RuntimeError()) == "RuntimeError"
    assert format_error(ExceptionGroup("g", [ValueError("same"), ValueError("same")])) == "same"


async def test_cancel_keeps_resume_line_and_kills_the_engine_process(
    script_runner: Callable[..., Any], tmp_path: Path
) -> None:
    pid_file = tmp_path / "engine.pid"
    runner = script_runner(
        f"""
        import json, os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print(json.dumps({{"type": "started", "session": "cx-1"}}), flush=True)
        print(json.dumps({{"type": "action", "id": "w", "kind": "command", "title": "sleep"}}),
              flush=True)
        time.sleep(60)
        """
    )
    transport = RecordingTransport()
    running: RunningTasks = {}

    async def cancel_when_started() -> None:
        await wait_until_async(
            lambda: bool(running) and next(iter(running.values())).resume is not None
        )
        next(iter(running.values())).cancel_requested.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_started)
        await drive(transport, runner, running_tasks=running)
    progress = transport.ops[0].ref
    assert progress is not None
    assert len(transport.of("send")) == 1
    assert transport.of("delete") == []
    text = transport.messages[progress.message_id]
    assert text.startswith("`cancelled` · scripted · 0s")
    assert text.endswith("`scripted resume cx-1`")
    assert running == {}
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_cancel_before_started_has_no_resume_line() -> None:
    transport = RecordingTransport()
    running: RunningTasks = {}
    runner = ScriptRunner([Wait(anyio.Event())], engine="codex", emit_started=False)

    async def cancel_soon() -> None:
        await wait_until_async(lambda: bool(running))
        next(iter(running.values())).cancel_requested.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_soon)
        await drive(transport, runner, running_tasks=running)
    progress = transport.ops[0].ref
    assert progress is not None
    assert transport.messages[progress.message_id] == "`cancelled` · codex · 0s"


# -- a real engine subprocess ----------------------------------------------------------------


async def test_real_subprocess_runner_end_to_end(script_runner: Callable[..., Any]) -> None:
    runner = script_runner(
        """
        import json, sys
        prompt = sys.stdin.read()
        def emit(**kw): print(json.dumps(kw), flush=True)
        emit(type="started", session="real-1")
        emit(type="action", id="c1", kind="command", title="git status", phase="started")
        emit(type="action", id="c1", kind="command", title="git status", phase="completed", ok=True)
        emit(type="completed", ok=True, answer="you said: " + prompt.strip())
        """
    )
    transport = RecordingTransport()
    await drive(transport, runner, text="`scripted resume zzz`\nhello engine")
    final = transport.of("send")[-1]
    assert final.text == (
        "done · scripted · 0s · step 1\n\nyou said: hello engine\n\n`scripted resume real-1`"
    )
    assert transport.ops[-1].kind == "delete"
    assert os.environ.get("TAKOPI_TEST_NEVER_SET") is None


async def test_failing_on_thread_known_does_not_abort_the_run() -> None:
    def broken(token: ResumeToken, done: anyio.Event) -> None:
        raise RuntimeError("scheduler bug")

    transport = RecordingTransport()
    runner = ScriptRunner([Return(answer="still fine")], engine="codex", resume_value="s-14")
    await drive(transport, runner, on_thread_known=broken)
    assert transport.of("send")[-1].text == (
        "done · codex · 0s\n\nstill fine\n\n`codex resume s-14`"
    )


async def test_runner_unavailable_reply() -> None:
    transport = RecordingTransport()
    ref = await send_runner_unavailable(
        cfg_for(transport),
        incoming=incoming(thread_id=5),
        engine="pi",
        issue="pi not found on PATH",
        resume_token=ResumeToken("pi", "p1"),
        resume_formatter=lambda token: f"`pi --session {token.value}`",
    )
    assert ref is not None
    (op,) = transport.ops
    assert op.text == "error · pi · 0s\n\nerror:\npi not found on PATH\n\n`pi --session p1`"
    assert op.options == SendOptions(
        reply_to=MessageRef(42, 7, thread_id=5), notify=True, thread_id=5
    )


async def test_broken_presenter_still_yields_a_terminal_reply() -> None:
    class BrokenFinal(MarkdownPresenter):
        def render_final(
            self, state: Any, *, elapsed_s: float, status: str, answer: str
        ) -> RenderedMessage:
            raise KeyError("template missing")

    transport = RecordingTransport()
    runner = ScriptRunner([Return(answer="answer")], engine="codex", resume_value="s-15")
    cfg = ExecBridgeConfig(transport=transport, presenter=BrokenFinal(), final_notify=True)
    await handle_message(
        cfg, runner=runner, incoming=incoming(), resume_token=None, clock=frozen_clock
    )
    assert transport.of("send")[-1].text == "done · codex · 0s\n\nanswer\n\n`codex resume s-15`"


# -- settling: the runner learns whether the terminal message really went out ----------------


class _SettleRecordingRunner:
    """Wraps a runner; registers an ``on_settled`` callback on the run's origin."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.engine = inner.engine
        self.settled: list[bool] = []
        self.format_resume = inner.format_resume
        self.is_resume_line = inner.is_resume_line
        self.extract_resume = inner.extract_resume

    async def run(self, prompt: str, resume: ResumeToken | None) -> AsyncIterator[TakopiEvent]:
        origin = current_run_origin.get()
        assert origin is not None
        origin.on_settled.append(self.settled.append)
        async for event in self._inner.run(prompt, resume):
            yield event


async def test_on_settled_reports_a_delivered_final() -> None:
    transport = RecordingTransport()
    runner = _SettleRecordingRunner(
        ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-settle")
    )
    await drive(transport, runner)
    assert runner.settled == [True]
    assert transport.of("send")[-1].text.startswith("done")


async def test_on_settled_reports_a_final_that_could_not_be_sent() -> None:
    transport = RecordingTransport()
    runner = _SettleRecordingRunner(
        ScriptRunner([Return(answer="ok")], engine="codex", resume_value="s-unsent")
    )
    transport.fail_sends = 0

    original_send = transport.send

    async def send_but_not_the_final(**kwargs: Any) -> MessageRef | None:
        if kwargs["message"].text.startswith("done"):
            transport.fail_sends = 1
        return await original_send(**kwargs)

    transport.send = send_but_not_the_final  # type: ignore[method-assign]
    transport.fail_edits = True
    await drive(transport, runner)
    assert runner.settled == [False]
