"""takopi-scripts 0.1.2 (command ``/run``) against this takopi, in one process.

The plugin loads user scripts from ``[plugins.run] scripts_dir`` and calls their
``async handle(ctx)`` with a CommandContext it rebuilds from ours (all 11 fields by keyword).
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest

from takopi.api import (
    CommandBackend,
    CommandContext,
    CommandResult,
    MessageRef,
    RunContext,
    get_command,
    list_command_ids,
)
from takopi.ids import RESERVED_COMMAND_IDS
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.demo import BACKEND as DEMO
from takopi.transport_runtime import TransportRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SCRIPTS = {
    "hello.py": '''
        """Say hello.

        More text that is not the description.
        """
        from takopi.api import CommandResult

        async def handle(ctx):
            await ctx.executor.send(f"hello {' '.join(ctx.args)}", reply_to=ctx.message)
            return CommandResult(text=f"args={list(ctx.args)} command={ctx.command}")
    ''',
    "capture.py": '''
        """Run the engine and quote its answer."""
        from takopi.api import CommandResult, RunContext, RunRequest

        async def handle(ctx):
            result = await ctx.executor.run_one(
                RunRequest(prompt=ctx.args_text, engine="demo", context=RunContext(project="p")),
                mode="capture",
            )
            return CommandResult(text=f"captured [{result.engine}]: {result.message.text}")
    ''',
    "where.py": """
        from takopi.api import CommandResult

        async def handle(ctx):
            return CommandResult(
                text=f"cfg={ctx.plugin_config.get('greeting')} default={ctx.runtime.default_engine}"
            )
    """,
    "broken.py": "def handle(ctx:\n",
    "boom.py": """
        async def handle(ctx):
            raise ValueError("kaboom")
    """,
    "quiet.py": """
        async def handle(ctx):
            return None
    """,
}


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, body in SCRIPTS.items():
        (folder / name).write_text(textwrap.dedent(body))
    return folder


@pytest.fixture
def runtime() -> TransportRuntime:
    runner = DEMO.build_runner({}, Path("takopi.toml"))
    router = AutoRouter([RunnerEntry(engine="demo", runner=runner)], default_engine="demo")
    return TransportRuntime(router=router, plugin_configs={"run": {"greeting": "hi"}})


def make_ctx(
    text: str, *, executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> CommandContext:
    """A context built the way a transport builds one (every field by keyword)."""
    command, _, args_text = text.lstrip("/").partition(" ")
    return CommandContext(
        command=command,
        text=text,
        args_text=args_text,
        args=tuple(shlex.split(args_text)),
        message=MessageRef(channel_id=42, message_id=7, thread_id=None, sender_id=5),
        reply_to=None,
        reply_text=None,
        config_path=Path("/tmp/takopi.toml"),
        plugin_config={**runtime.plugin_config("run"), "scripts_dir": str(scripts_dir)},
        runtime=runtime,
        executor=executor,
    )


async def run(text: str, **kw: Any) -> CommandResult:
    backend = get_command("run")
    assert backend is not None
    result = await backend.handle(make_ctx(text, **kw))
    assert isinstance(result, CommandResult)
    return result


def test_backend_loads_through_entry_points() -> None:
    assert "run" not in RESERVED_COMMAND_IDS
    assert "run" in list_command_ids()
    backend = get_command("run")
    assert isinstance(backend, CommandBackend)
    assert backend.id == "run"
    assert get_command("run", allowlist=["takopi-scripts"]) is not None


async def test_usage_and_list(executor: Any, runtime: TransportRuntime, scripts_dir: Path) -> None:
    kw = {"executor": executor, "runtime": runtime, "scripts_dir": scripts_dir}
    usage = await run("/run", **kw)
    assert usage.text == "Usage: /run <script> [args] | /run list | /run reload"
    listing = await run("/run list", **kw)
    lines = listing.text.splitlines()
    assert lines[0] == "Available scripts:"
    assert "  hello - Say hello." in lines
    assert "  capture - Run the engine and quote its answer." in lines
    assert "  quiet" in lines


async def test_script_sends_through_executor_and_returns_result(
    executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> None:
    result = await run(
        "/run hello a b", executor=executor, runtime=runtime, scripts_dir=scripts_dir
    )
    assert result.text == "args=['a', 'b'] command=hello"
    assert executor.sent == [("hello a b", MessageRef(channel_id=42, message_id=7), True)]


async def test_script_runs_engine_in_capture_mode(
    executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> None:
    result = await run(
        "/run capture do it now", executor=executor, runtime=runtime, scripts_dir=scripts_dir
    )
    assert result.text == "captured [demo]: ran: do it now"
    ((request, mode),) = executor.runs
    assert mode == "capture"
    assert request.prompt == "do it now"
    assert request.engine == "demo"
    assert isinstance(request.context, RunContext) and request.context.project == "p"


async def test_script_sees_plugin_config_and_runtime(
    executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> None:
    result = await run("/run where", executor=executor, runtime=runtime, scripts_dir=scripts_dir)
    assert result.text == "cfg=hi default=demo"


async def test_script_errors_become_replies(
    executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> None:
    kw = {"executor": executor, "runtime": runtime, "scripts_dir": scripts_dir}
    assert (await run("/run nope", **kw)).text == "Script not found: nope"
    broken = await run("/run broken", **kw)
    assert broken.text.startswith("Import error in broken:")
    assert "SyntaxError" in broken.text
    boom = await run("/run boom", **kw)
    assert boom.text.startswith("Runtime error in boom:")
    assert "ValueError: kaboom" in boom.text
    assert (await run("/run quiet", **kw)).text == "Script quiet completed (no output)"


async def test_reload_clears_cached_script_modules(
    executor: Any, runtime: TransportRuntime, scripts_dir: Path
) -> None:
    kw = {"executor": executor, "runtime": runtime, "scripts_dir": scripts_dir}
    await run("/run hello", **kw)
    cleared = await run("/run reload", **kw)
    assert cleared.text == "Cleared 1 cached module(s): takopi_script_hello"
    assert (await run("/run reload", **kw)).text == "No cached scripts to clear."
