"""Command plugin API: data shapes, executor subclassing, plugin lookup and the resolver hook."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from takopi import commands, plugins
from takopi.commands import (
    CommandBackend,
    CommandContext,
    CommandExecutor,
    CommandResult,
    RunMode,
    RunRequest,
    RunResult,
    get_command,
    list_command_ids,
    set_command_resolver,
)
from takopi.config import ConfigError
from takopi.context import RunContext
from takopi.transport import MessageRef, RenderedMessage


@dataclass(slots=True)
class RecordingExecutor(CommandExecutor):
    """A transport-style executor: a slotted dataclass subclassing the Protocol."""

    sent: list[Any] = field(default_factory=list)

    async def send(
        self,
        message: RenderedMessage | str,
        *,
        reply_to: MessageRef | None = None,
        notify: bool = True,
    ) -> MessageRef | None:
        self.sent.append((message, reply_to, notify))
        return MessageRef(1, len(self.sent))

    async def run_one(self, request: RunRequest, *, mode: RunMode = "emit") -> RunResult:
        return RunResult(engine=request.engine or "codex", message=RenderedMessage(request.prompt))

    async def run_many(
        self, requests: Sequence[RunRequest], *, mode: RunMode = "emit", parallel: bool = False
    ) -> list[RunResult]:
        return [await self.run_one(r, mode=mode) for r in requests]


class EchoCommand:
    id = "echo"
    description = "echo the args"

    async def handle(self, ctx: CommandContext) -> CommandResult | None:
        await ctx.executor.send("working", notify=False)
        result = await ctx.executor.run_one(RunRequest(prompt=ctx.args_text), mode="capture")
        assert result.message is not None
        return CommandResult(text=f"{ctx.command}: {result.message.text}", notify=False)


def make_ctx(executor: CommandExecutor) -> CommandContext:
    return CommandContext(
        command="echo",
        text="/echo a b",
        args_text="a b",
        args=("a", "b"),
        message=MessageRef(1, 10, sender_id=5),
        reply_to=None,
        reply_text=None,
        config_path=None,
        plugin_config={"k": "v"},
        runtime=None,
        executor=executor,
    )


@pytest.mark.anyio
async def test_command_round_trip_with_slotted_executor() -> None:
    executor = RecordingExecutor()
    assert isinstance(executor, CommandExecutor)
    backend = EchoCommand()
    assert isinstance(backend, CommandBackend)
    result = await backend.handle(make_ctx(executor))
    assert result == CommandResult(text="echo: a b", notify=False, reply_to=None)
    assert executor.sent == [("working", None, False)]
    many = await executor.run_many([RunRequest("x", engine="pi"), RunRequest("y")])
    assert [(r.engine, r.message.text if r.message else None) for r in many] == [
        ("pi", "x"),
        ("codex", "y"),
    ]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_value_types_reject_unknown_fields() -> None:
    with pytest.raises(TypeError):
        CommandResult(text="x", extra={})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        CommandContext(command="c")  # type: ignore[call-arg]
    req = RunRequest(prompt="p", context=RunContext(project="proj"))
    assert (req.engine, req.context) == (None, RunContext(project="proj"))


def test_resolver_hook_replaces_in_process_loading() -> None:
    calls: list[tuple[str, Any, bool]] = []
    proxy = EchoCommand()

    def resolver(command_id: str, *, allowlist: Any = None, required: bool = True) -> Any:
        calls.append((command_id, allowlist, required))
        return proxy if command_id == "echo" else None

    previous = set_command_resolver(resolver)
    try:
        assert get_command("echo", allowlist=["x"], required=False) is proxy
        assert get_command("other") is None
    finally:
        assert set_command_resolver(previous) is resolver
    assert calls == [("echo", ["x"], False), ("other", None, True)]


def test_unknown_command_errors_cleanly() -> None:
    with pytest.raises(ConfigError, match="Unknown command 'takopi_no_such_cmd'"):
        get_command("takopi_no_such_cmd")
    assert get_command("takopi_no_such_cmd", required=False) is None


# A real distribution on sys.path declaring command entry points.
PLUGIN_SOURCE = """
class _Hello:
    id = "hello_cr"
    description = "says hello"

    async def handle(self, ctx):
        return None


class _WrongId:
    id = "something_else"
    description = "mismatched id"

    async def handle(self, ctx):
        return None


HELLO = _Hello()
WRONG = _WrongId()
"""


@pytest.fixture
def fake_plugin_dist(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "takopi_cr_fake_plugin.py").write_text(PLUGIN_SOURCE)
    dist = tmp_path / "takopi_cr_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: takopi-cr-fake-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[takopi.command_backends]\n"
        "hello_cr = takopi_cr_fake_plugin:HELLO\n"
        "wrongid_cr = takopi_cr_fake_plugin:WRONG\n"
        "new = takopi_cr_fake_plugin:HELLO\n"
    )
    sys.path.insert(0, str(tmp_path))
    plugins.clear_load_errors()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("takopi_cr_fake_plugin", None)
        plugins.clear_load_errors()


def test_in_process_loading_from_entry_points(fake_plugin_dist: Path) -> None:
    ids = list_command_ids()
    assert "hello_cr" in ids and "wrongid_cr" in ids
    assert "new" not in ids  # reserved chat command
    backend = get_command("hello_cr")
    assert backend is not None and backend.id == "hello_cr"
    assert get_command("hello_cr") is backend  # cached
    with pytest.raises(ConfigError, match="id mismatch"):
        get_command("wrongid_cr")
    assert get_command("wrongid_cr", required=False) is None
    # The allowlist filters by distribution name.
    assert "hello_cr" not in list_command_ids(allowlist=["some-other-dist"])
    assert "hello_cr" in list_command_ids(allowlist=["takopi_cr.fake-plugin"])
    assert get_command("hello_cr", allowlist=["some-other-dist"], required=False) is None


def test_core_runner_names_resolve_through_takopi_api() -> None:
    import takopi.api as api
    from takopi import events, runner, scheduler
    from takopi.utils import paths

    assert api.EventFactory is events.EventFactory
    assert api.Runner is runner.Runner
    assert api.BaseRunner is runner.BaseRunner
    assert api.JsonlSubprocessRunner is runner.JsonlSubprocessRunner
    assert api.ThreadJob is scheduler.ThreadJob
    assert api.ThreadScheduler is scheduler.ThreadScheduler
    assert api.set_run_base_dir is paths.set_run_base_dir
    assert api.reset_run_base_dir is paths.reset_run_base_dir
    assert api.get_command is commands.get_command
    assert api.list_command_ids is commands.list_command_ids
    assert api.CommandExecutor is commands.CommandExecutor
