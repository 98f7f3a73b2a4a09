"""Tier 2: the real agent CLIs, driven through the takopi runners, against the fake model.

For every engine: a plain prompt, then a resume whose history must reach the model; a shell
tool call (run under strace: the fake must be the only network peer); an HTTP 400 from the
model; cancellation mid-turn (the CLI and all its children must be gone within 3 s). Then the
issue's improvements on the real CLIs (pi resume by full id, opencode resume from another cwd,
claude permission denials). The CLIs come from ``scripts/install-engines.sh``; their config is passed
through the takopi engine config keys (``[codex] extra_args``, ``[claude] model``,
``[opencode] model``, ``[pi] provider/model``) plus environment variables.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from takopi.engines import get_backend
from takopi.model import ActionEvent, CompletedEvent, ResumeToken, StartedEvent, TakopiEvent
from takopi.runner import Runner
from takopi.utils.paths import reset_run_base_dir, set_run_base_dir
from tests.fakes.model_server import FakeModelServer
from tests.real_engines.engines import ENGINES, PI_APIS, EngineSandbox, live_processes

pytestmark = [pytest.mark.real_engines, pytest.mark.anyio]

RUN_TIMEOUT_S = 60.0
CANCEL_GRACE_S = 3.0


def build_runner(sandbox: EngineSandbox) -> Runner:
    """The takopi runner for the sandbox's engine, built from its engine config table."""
    backend = get_backend(sandbox.engine)
    return backend.build_runner(dict(sandbox.config), sandbox.root / "takopi.toml")


async def collect(
    runner: Runner, prompt: str, resume: ResumeToken | None, cwd: Path
) -> list[TakopiEvent]:
    """Run one prompt to completion (bounded) from ``cwd`` and return every event."""
    token = set_run_base_dir(cwd)
    try:
        with anyio.fail_after(RUN_TIMEOUT_S):
            return [event async for event in runner.run(prompt, resume)]
    finally:
        reset_run_base_dir(token)


def describe(events: list[TakopiEvent]) -> str:
    """Readable event dump for assertion messages."""
    return "\n".join(repr(event) for event in events)


def final(events: list[TakopiEvent]) -> CompletedEvent:
    """The single terminal event, which must be last."""
    completed = [e for e in events if isinstance(e, CompletedEvent)]
    assert len(completed) == 1, describe(events)
    assert events[-1] is completed[0], describe(events)
    return completed[0]


def final_ok(events: list[TakopiEvent]) -> CompletedEvent:
    """The single terminal event, which must be last and a success."""
    done = final(events)
    assert done.ok, describe(events)
    return done


def started(events: list[TakopiEvent]) -> StartedEvent:
    """The single started event."""
    found = [e for e in events if isinstance(e, StartedEvent)]
    assert len(found) == 1, describe(events)
    return found[0]


def prompt_requests(fake: FakeModelServer, prompt: str) -> list[Any]:
    """Model requests whose scripted prompt is ``prompt``."""
    return [r for r in fake.model_requests() if r.prompt == prompt]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("engine", ENGINES)
async def test_new_session_then_resume_carries_history(
    engine: str,
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
) -> None:
    # ANTHROPIC_API_KEY must be stripped by the claude runner (use_api_billing = false).
    extra_env = {"ANTHROPIC_API_KEY": "must-not-reach-the-model"} if engine == "claude" else {}
    sandbox = engine_sandbox(engine, **extra_env)
    runner = build_runner(sandbox)
    first_prompt = "remember the word takopi-marker-7"

    events = await collect(runner, first_prompt, None, sandbox.work)
    done = final_ok(events)
    assert done.answer == f"ok: {first_prompt}", describe(events)
    token = started(events).resume
    assert token.engine == engine
    assert token.value
    assert done.resume == token
    assert runner.extract_resume(runner.format_resume(token)) == token
    assert prompt_requests(fake_model, first_prompt), fake_model.requests
    if engine == "claude":
        first = prompt_requests(fake_model, first_prompt)[0]
        assert "authorization" in first.credential_headers
        assert "x-api-key" not in first.credential_headers

    resumed = await collect(runner, "HISTORY", token, sandbox.work)
    done2 = final_ok(resumed)
    assert started(resumed).resume == token, describe(resumed)
    assert done2.resume == token
    assert done2.answer.splitlines() == [
        "HISTORY: 1 earlier prompt(s)",
        f"- {first_prompt}",
    ], describe(resumed)
    history_requests = prompt_requests(fake_model, "HISTORY")
    assert history_requests, fake_model.requests
    carried = [t for t in history_requests[-1].user_texts() if first_prompt in t]
    assert carried, history_requests[-1].body


_PORT_RE = re.compile(r"sin6?_port=htons\((?P<port>\d+)\)")
_ADDR_RE = re.compile(r"(?:inet_addr|inet_pton)\((?:AF_INET6?, )?\"(?P<addr>[^\"]+)\"")


def inet_peers(trace: str) -> set[tuple[str, int]]:
    """(address, port) of every AF_INET/AF_INET6 sockaddr in an strace log."""
    peers = set()
    for line in trace.splitlines():
        if "AF_INET" not in line:
            continue
        port, addr = _PORT_RE.search(line), _ADDR_RE.search(line)
        assert port and addr, f"unparsed strace line: {line}"
        peers.add((addr["addr"], int(port["port"])))
    return peers


def traced_cli_path(engine: str, engines_bin: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A wrapper dir whose ``<engine>`` execs the real CLI under strace; (dir, trace log).

    Every inet connect/sendto of the CLI and all its children is logged, independent of the
    netns (which would only make such attempts fail)."""
    strace = shutil.which("strace")
    assert strace, "strace is required to check the CLIs' connections"
    trace_log = tmp_path / f"{engine}.strace"
    wrappers = tmp_path / "wrappers"
    wrappers.mkdir()
    wrapper = wrappers / engine
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {strace} -f -qq --seccomp-bpf -e trace=connect,sendto,sendmsg "
        f'-o {trace_log} {engines_bin / engine} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrappers, trace_log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ENGINES)
async def test_shell_tool_call_is_a_command_action_and_only_the_fake_is_contacted(
    engine: str,
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
    engines_bin: Path,
    tmp_path: Path,
) -> None:
    wrappers, trace_log = traced_cli_path(engine, engines_bin, tmp_path)
    sandbox = engine_sandbox(engine)
    os.environ["PATH"] = f"{wrappers}:{os.environ['PATH']}"  # restored by monkeypatch
    runner = build_runner(sandbox)

    events = await collect(runner, "please\nRUN: echo hi", None, sandbox.work)
    done = final_ok(events)
    assert done.answer == "`echo hi` printed: hi", describe(events)

    commands = [e for e in events if isinstance(e, ActionEvent) and e.action.kind == "command"]
    phases = [e.phase for e in commands]
    assert commands, describe(events)
    assert phases[0] == "started" and phases[-1] == "completed", describe(events)
    assert {e.action.id for e in commands} == {commands[0].action.id}, describe(events)
    finished = commands[-1]
    assert finished.ok is True, describe(events)
    assert "echo hi" in finished.action.title
    exit_code = finished.action.detail.get("exit_code")
    if engine in ("codex", "opencode"):  # the only CLIs that report the exit code
        assert exit_code == 0, describe(events)
    assert events.index(finished) < events.index(done)

    # The model saw the tool result come back before giving its answer.
    run_requests = prompt_requests(fake_model, "please\nRUN: echo hi")
    assert [r.action for r in run_requests if r.action == "tool"] == ["tool"]
    assert run_requests[-1].action == "answer"

    # No connection attempt to anything but the fake, from the CLI or any of its children.
    peers = inet_peers(trace_log.read_text())
    assert ("127.0.0.1", fake_model.port) in peers  # the trace did see the model traffic
    assert peers == {("127.0.0.1", fake_model.port)}, peers


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ENGINES)
async def test_model_http_400_is_an_error_completion(
    engine: str,
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
) -> None:
    sandbox = engine_sandbox(engine)
    runner = build_runner(sandbox)

    events = await collect(runner, "FAIL400", None, sandbox.work)
    done = final(events)
    assert done.ok is False, describe(events)
    assert done.error, describe(events)
    # The model's error text reaches the user (not only "failed (rc=1)").
    assert "FAIL400" in done.error, describe(events)
    assert prompt_requests(fake_model, "FAIL400")[0].action == "fail"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ENGINES)
async def test_cancel_mid_turn_kills_cli_and_children(
    engine: str,
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
) -> None:
    sandbox = engine_sandbox(engine)
    runner = build_runner(sandbox)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    events: list[TakopiEvent] = []

    async def consume() -> None:
        token = set_run_base_dir(sandbox.work)
        try:
            async for event in runner.run("SLEEP 30", None):
                events.append(event)
        finally:
            reset_run_base_dir(token)

    procs: list[psutil.Process] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with anyio.fail_after(RUN_TIMEOUT_S):
            while not prompt_requests(fake_model, "SLEEP 30"):
                await anyio.sleep(0.05)
        # The turn is in flight: the CLI (and whatever it spawned) is alive now.
        procs = [p for p in me.children(recursive=True) if p.pid not in before]
        assert live_processes(procs), "no CLI process found while the turn was in flight"
        cancelled_at = time.monotonic()
        tg.cancel_scope.cancel()

    remaining = live_processes(procs)
    while remaining and time.monotonic() < cancelled_at + CANCEL_GRACE_S:
        time.sleep(0.05)
        remaining = live_processes(procs)
    assert not remaining, [(p.pid, p.name(), p.cmdline()) for p in remaining]
    assert not any(isinstance(e, CompletedEvent) and e.ok for e in events), describe(events)


# --- the improvements, proven against the real CLIs -------------------------------


@pytest.mark.timeout(120)
async def test_pi_resumes_the_right_one_of_two_sessions_started_together(
    engine_sandbox: Callable[..., EngineSandbox],
) -> None:
    # pi session ids are UUIDv7: two sessions started within ~65 s share their first 8 hex
    # digits, and pi resolves an id prefix to the most recently modified match.
    sandbox = engine_sandbox("pi")
    runner = build_runner(sandbox)
    first = await collect(runner, "session alpha", None, sandbox.work)
    second = await collect(runner, "session beta", None, sandbox.work)
    token_a, token_b = started(first).resume, started(second).resume
    assert token_a != token_b

    resumed = await collect(runner, "HISTORY", token_a, sandbox.work)
    done = final_ok(resumed)
    assert done.answer.splitlines() == ["HISTORY: 1 earlier prompt(s)", "- session alpha"]
    assert done.resume == token_a


@pytest.mark.timeout(120)
async def test_opencode_resume_from_another_cwd_does_not_hang(
    engine_sandbox: Callable[..., EngineSandbox],
    tmp_path: Path,
) -> None:
    # opencode `run --session` from a different cwd hangs forever unless given --dir.
    sandbox = engine_sandbox("opencode")
    runner = build_runner(sandbox)
    first = await collect(runner, "from the project dir", None, sandbox.work)
    token = started(first).resume
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    resumed = await collect(runner, "HISTORY", token, elsewhere)
    done = final_ok(resumed)
    assert done.answer.splitlines() == [
        "HISTORY: 1 earlier prompt(s)",
        "- from the project dir",
    ]


@pytest.mark.timeout(120)
async def test_claude_permission_denial_becomes_a_warning_action(
    engine_sandbox: Callable[..., EngineSandbox],
) -> None:
    sandbox = engine_sandbox("claude")
    sandbox.config["allowed_tools"] = ["Read"]
    runner = build_runner(sandbox)

    events = await collect(runner, "RUN: touch denied.txt", None, sandbox.work)
    final(events)
    warnings = [
        e
        for e in events
        if isinstance(e, ActionEvent) and e.action.kind == "warning" and e.level == "warning"
    ]
    assert warnings, describe(events)
    assert any(
        "Bash" in e.action.title and "touch denied.txt" in e.action.title for e in warnings
    ), describe(events)
    assert not (sandbox.work / "denied.txt").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("api", [a for a in PI_APIS if a != "openai-completions"])
async def test_pi_over_the_other_wires(
    api: str,
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
) -> None:
    # pi's Responses and Anthropic clients need the fake's full event streams.
    sandbox = engine_sandbox("pi", pi_api=api)
    runner = build_runner(sandbox)

    events = await collect(runner, "please\nRUN: echo hi", None, sandbox.work)
    done = final_ok(events)
    assert done.answer == "`echo hi` printed: hi", describe(events)
    commands = [e for e in events if isinstance(e, ActionEvent) and e.action.kind == "command"]
    assert [e.phase for e in commands] == ["started", "completed"], describe(events)
    expected_wire = {"openai-responses": "responses", "anthropic-messages": "anthropic"}[api]
    assert {r.wire for r in fake_model.model_requests()} == {expected_wire}


# --- reference engine config keys reach the real CLIs ----------------------------------------


@pytest.mark.timeout(120)
async def test_codex_profile_key_selects_a_config_toml_profile(
    engine_sandbox: Callable[..., EngineSandbox],
    fake_model: FakeModelServer,
) -> None:
    sandbox = engine_sandbox("codex")
    # The provider now lives only in a profile. codex 0.169 reads `--profile NAME` from
    # $CODEX_HOME/NAME.config.toml and refuses a legacy [profiles.NAME] table in config.toml.
    codex_home = sandbox.home / ".codex"
    (codex_home / "config.toml").write_text(
        "[analytics]\n"
        "enabled = false\n"
        "[features]\n"
        "plugins = false\n"
        "unbounded_connection_retries = false\n"
    )
    (codex_home / "offline.config.toml").write_text(
        'model = "gpt-5.5"\n'
        'model_provider = "fake"\n'
        'approval_policy = "never"\n'
        "[model_providers.fake]\n"
        'name = "Fake LLM"\n'
        f'base_url = "{fake_model.base_url}/v1"\n'
        'env_key = "FAKE_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    runner = build_runner(EngineSandbox(**{**sandbox.__dict__, "config": {"profile": "offline"}}))

    events = await collect(runner, "via profile", None, sandbox.work)
    done = final_ok(events)
    assert done.answer == "ok: via profile"
    assert started(events).title == "offline"
    assert prompt_requests(fake_model, "via profile")


@pytest.mark.timeout(120)
async def test_claude_permission_mode_key_reaches_the_cli(
    engine_sandbox: Callable[..., EngineSandbox],
) -> None:
    sandbox = engine_sandbox("claude")
    sandbox.config["permission_mode"] = "acceptEdits"
    runner = build_runner(sandbox)

    events = await collect(runner, "hello", None, sandbox.work)
    assert final(events).ok, describe(events)
    meta = started(events).meta or {}
    assert meta.get("permissionMode") == "acceptEdits", describe(events)
