"""takopi-cron 0.1.0 (command ``/cron``, background asyncio tasks) against this takopi.

Everything runs in one event loop: cron's interval tasks keep using ``ctx.executor`` after
``handle()`` returned. The executor's ``run_one`` really runs the engine the cron prompt
selects (a published engine plugin, kimi or qoder, against the fake CLI), so this also checks
``runtime.resolve_message`` with cron's exact keywords and directive parsing of plugin engines.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest

from takopi.api import (
    CommandBackend,
    CommandContext,
    CommandResult,
    CompletedEvent,
    MessageRef,
    RenderedMessage,
    RunRequest,
    RunResult,
    get_command,
)
from takopi.engines import get_backend
from takopi.router import AutoRouter, RunnerEntry
from takopi.transport_runtime import TransportRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

MESSAGE = MessageRef(channel_id=42, message_id=7, thread_id=3, sender_id=5)


@pytest.fixture
def runtime() -> TransportRuntime:
    entries = [
        RunnerEntry(engine=engine, runner=get_backend(engine).build_runner({}, Path("t.toml")))
        for engine in ("kimi", "qoder")
    ]
    return TransportRuntime(router=AutoRouter(entries, default_engine="qoder"))


@pytest.fixture
def engine_executor(executor: Any, runtime: TransportRuntime, fake_cli: Any) -> Any:
    """The recording executor, answering runs by running the requested engine plugin."""

    async def run_engine(request: RunRequest) -> RunResult:
        resolved = runtime.resolve_runner(resume_token=None, engine_override=request.engine)
        answer = None
        async for event in resolved.runner.run(request.prompt, None):
            if isinstance(event, CompletedEvent):
                answer = event.answer
        message = RenderedMessage(text=answer) if answer is not None else None
        return RunResult(engine=resolved.engine, message=message)

    executor.run_result = run_engine
    return executor


def make_ctx(
    text: str,
    *,
    executor: Any,
    runtime: TransportRuntime,
    plugin_config: dict[str, Any] | None = None,
) -> CommandContext:
    command, _, args_text = text.lstrip("/").partition(" ")
    return CommandContext(
        command=command,
        text=text,
        args_text=args_text,
        args=tuple(shlex.split(args_text)),
        message=MESSAGE,
        reply_to=None,
        reply_text=None,
        config_path=None,
        plugin_config=dict(plugin_config or {}),
        runtime=runtime,
        executor=executor,
    )


async def cron(text: str, **kw: Any) -> CommandResult | None:
    backend = get_command("cron")
    assert backend is not None
    return await backend.handle(make_ctx(text, **kw))


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


def test_backend_loads_through_entry_points() -> None:
    backend = get_command("cron")
    assert isinstance(backend, CommandBackend)
    assert backend.id == "cron"


async def test_interval_job_keeps_running_after_handle_returns(
    engine_executor: Any, runtime: TransportRuntime
) -> None:
    kw = {"executor": engine_executor, "runtime": runtime}
    started = await cron("/cron start 0.0001 /kimi check the build", **kw)
    assert started == CommandResult(text="cron: started (every 0.0001h)")

    # handle() has returned; the job's task keeps calling the executor.
    await wait_for(lambda: len(engine_executor.runs) >= 2)
    request, mode = engine_executor.runs[0]
    assert mode == "capture"
    assert request.engine == "kimi"  # the /kimi directive, parsed by takopi's runtime
    assert request.prompt == "check the build"
    await wait_for(lambda: len(engine_executor.sent) >= 4)
    header, reply_to, notify = engine_executor.sent[0]
    assert header.startswith("cron tick #1 (every 0.0001h) @ ")
    assert reply_to == MESSAGE and notify is True
    assert engine_executor.sent[1] == ("answer to: check the build", MESSAGE, False)

    status = await cron("/cron status", **kw)
    assert status is not None
    assert status.text.startswith("cron: running\n- job: default\n- interval: 0.0001h")
    assert "- engine: kimi" in status.text
    assert "- prompt: check the build" in status.text
    listing = await cron("/cron list", **kw)
    assert listing is not None
    assert "- 42 thread=3 [default]: every 0.0001h" in listing.text

    assert await cron("/cron stop", **kw) == CommandResult(text="cron: stopped")
    runs_at_stop = len(engine_executor.runs)
    await anyio.sleep(1.0)  # several intervals: a stopped job must not tick again
    assert len(engine_executor.runs) == runs_at_stop
    assert await cron("/cron status", **kw) == CommandResult(text="cron: not running")
    assert await cron("/cron stop", **kw) == CommandResult(text="cron: not running")


async def test_one_shot_run_replies_through_executor(
    engine_executor: Any, runtime: TransportRuntime
) -> None:
    result = await cron("/cron run /qoder summarise", executor=engine_executor, runtime=runtime)
    assert result is None
    ((request, mode),) = engine_executor.runs
    assert (request.engine, request.prompt, mode) == ("qoder", "summarise", "capture")
    assert engine_executor.sent == [("answer to: summarise", MESSAGE, True)]


async def test_bad_input_and_permissions_are_replies_not_crashes(
    executor: Any, runtime: TransportRuntime
) -> None:
    kw = {"executor": executor, "runtime": runtime}
    bad_hours = await cron("/cron start abc do it", **kw)
    assert bad_hours == CommandResult(text="cron error: Invalid hours 'abc'; expected a number.")
    unknown = await cron("/cron frobnicate", **kw)
    assert unknown == CommandResult(text="cron error: Unknown subcommand 'frobnicate'.")
    denied = await cron("/cron status", plugin_config={"allowed_user_ids": [99]}, **kw)
    assert denied == CommandResult(text="cron error: user not allowed")
    allowed = await cron("/cron status", plugin_config={"allowed_user_ids": [5]}, **kw)
    assert allowed == CommandResult(text="cron: not running")
    assert executor.runs == []
