"""End to end: runs started by command plugins through ``ctx.executor`` (K-7 ``run_one``,
K-8 ``run_many``) — new threads, the chat's or topic's context/engine/overrides, the
resume-line rule of stateful chats, stored sessions, and sequential/parallel batches."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import takopi.telegram.dispatch as dispatch_mod
from takopi.commands import CommandResult, RunRequest
from takopi.context import RunContext
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner as build_codex
from takopi.runners.demo import build_runner as build_demo
from takopi.transport_runtime import TransportRuntime
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT

pytestmark = pytest.mark.timeout(120)

PROJECT_CHAT = -2002  # the `api` project's own group
FORUM = -100888
ADMIN = 601

Body = Callable[[Any], Awaitable[CommandResult | None]]


class Plugin:
    """A command plugin whose ``handle`` is the test's function."""

    def __init__(self, command_id: str, body: Body) -> None:
        self.id = command_id
        self.description = f"test command {command_id}"
        self._body = body

    async def handle(self, ctx: Any) -> CommandResult | None:
        return await self._body(ctx)


def install(monkeypatch: pytest.MonkeyPatch, **bodies: Body) -> None:
    backends = {name: Plugin(name, body) for name, body in bodies.items()}
    monkeypatch.setattr(dispatch_mod, "list_command_ids", lambda allowlist=None: sorted(backends))
    monkeypatch.setattr(
        dispatch_mod,
        "get_command",
        lambda cid, allowlist=None, required=True: backends.get(cid),
    )


async def go(ctx: Any) -> CommandResult:
    """``/go <prompt>``: one run with every default taken from the chat."""
    result = await ctx.executor.run_one(RunRequest(prompt=ctx.args_text))
    return CommandResult(text=f"ran on {result.engine}")


async def go_on(ctx: Any) -> CommandResult:
    """``/goon <engine> <prompt>``: the plugin names the engine."""
    engine, prompt = ctx.args_text.split(" ", 1)
    result = await ctx.executor.run_one(RunRequest(prompt=prompt, engine=engine))
    return CommandResult(text=f"ran on {result.engine}")


async def go_web(ctx: Any) -> CommandResult:
    """``/goweb <prompt>``: the plugin names the context."""
    result = await ctx.executor.run_one(
        RunRequest(prompt=ctx.args_text, context=RunContext(project="web"))
    )
    return CommandResult(text=f"ran on {result.engine}")


def _runtime(tmp_path: Path) -> TransportRuntime:
    """codex and the (instant) demo engine; projects `web`, and `api` with its own chat."""
    for name in ("web", "api"):
        (tmp_path / name).mkdir(exist_ok=True)
    projects = ProjectsConfig(
        projects={
            "web": ProjectConfig(alias="web", path=tmp_path / "web"),
            "api": ProjectConfig(alias="api", path=tmp_path / "api", chat_id=PROJECT_CHAT),
        },
        chat_map={PROJECT_CHAT: "api"},
    )
    return TransportRuntime(
        router=AutoRouter(
            [
                RunnerEntry(engine="codex", runner=build_codex({}, None)),
                RunnerEntry(engine="demo", runner=build_demo({"delay": 0}, tmp_path / "x.toml")),
            ],
            default_engine="codex",
        ),
        projects=projects,
        config_path=tmp_path / "takopi.toml",
    )


def _send(server, text: str, chat: int = CHAT, **kw: Any) -> int:
    return int(server.send_user_message(chat, text, **kw)["message_id"])


def _chat_session(tmp_path: Path) -> str:
    state = json.loads((tmp_path / "telegram_chat_sessions_state.json").read_text())
    return str(state["chats"][f"{CHAT}:chat"]["sessions"]["codex"]["resume"])


def test_run_one_in_chat_mode_is_a_new_thread_that_becomes_the_session(
    server, fake_codex, harness_factory, tmp_path, monkeypatch
):
    install(monkeypatch, go=go)
    h = harness_factory(
        runtime=_runtime(tmp_path), session_mode="chat", show_resume_line=False
    ).start()
    one = _send(server, "one")
    h.final_for(CHAT, one)
    before = _chat_session(tmp_path)
    cmd = _send(server, "/go from the plugin")
    final = h.final_for(CHAT, cmd)  # the run answers the command message
    assert "ok: from the plugin" in final.text
    assert "codex resume" not in final.text  # stateful chat: hidden like any other run
    h.reply_to(CHAT, cmd, text="ran on codex")
    # a new thread although the chat has a stored session...
    assert fake_codex.calls()[1]["resume"] is None
    # ...and that thread is now the chat's session (reference #107): the next message resumes it
    after = _chat_session(tmp_path)
    assert after != before
    nxt = _send(server, "next")
    h.final_for(CHAT, nxt)
    assert fake_codex.calls()[2]["resume"] == after


@pytest.mark.parametrize(
    ("settings", "stores_session"),
    [
        ({"session_mode": "chat", "show_resume_line": True}, True),
        ({"session_mode": "stateless", "show_resume_line": False}, False),
    ],
    ids=["chat-mode-with-show_resume_line", "stateless"],
)
def test_run_one_shows_the_resume_line_unless_hidden_by_a_stateful_chat(
    server, fake_codex, harness_factory, tmp_path, monkeypatch, settings, stores_session
):
    install(monkeypatch, go=go)
    h = harness_factory(runtime=_runtime(tmp_path), **settings).start()
    cmd = _send(server, "/go visible")
    final = h.final_for(CHAT, cmd)
    assert re.search(r"codex resume thread-[0-9a-f]+$", final.text), final.text
    h.reply_to(CHAT, cmd, text="ran on codex")
    sessions = tmp_path / "telegram_chat_sessions_state.json"
    stored = sessions.exists() and json.loads(sessions.read_text())["chats"] != {}
    assert stored is stores_session


def test_run_one_takes_context_engine_and_overrides_from_the_chat(
    server, fake_codex, harness_factory, tmp_path, monkeypatch
):
    install(monkeypatch, go=go, goon=go_on, goweb=go_web)
    server.add_chat(PROJECT_CHAT)
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    # the chat's /ctx binding and /model override
    h.reply_to(CHAT, _send(server, "/ctx set web"), text="chat bound to web")
    h.reply_to(CHAT, _send(server, "/model set gpt-plugin"), prefix="chat model override set")
    cmd = _send(server, "/go one")
    final = h.final_for(CHAT, cmd)
    assert final.text.splitlines()[-2] == "ctx: web"
    call = fake_codex.calls()[0]
    assert call["cwd"] == str(tmp_path / "web")
    assert call["argv"][call["argv"].index("--model") + 1] == "gpt-plugin"
    # the chat's default engine
    h.reply_to(CHAT, _send(server, "/agent set demo"), text="chat default engine set to demo")
    cmd = _send(server, "/go two")
    assert h.final_for(CHAT, cmd).text.startswith("done · demo · ")
    h.reply_to(CHAT, cmd, text="ran on demo")
    # an engine named by the plugin wins over the chat default
    cmd = _send(server, "/goon codex three")
    h.reply_to(CHAT, cmd, text="ran on codex")
    assert [c["prompt"] for c in fake_codex.calls()] == ["one", "three"]
    # an engine that is not configured: a plain error reply (no run header)
    cmd = _send(server, "/goon nope four")
    err = h.reply_to(CHAT, cmd, prefix="error")
    assert err.text == "error: engine 'nope' is unavailable: engine not configured"
    h.reply_to(CHAT, cmd, text="ran on nope")
    # a project's own chat: its project is the default context
    cmd = _send(server, "/go five", chat=PROJECT_CHAT, user_id=77)
    final = h.final_for(PROJECT_CHAT, cmd)
    assert final.text.splitlines()[-2] == "ctx: api"
    assert fake_codex.calls()[-1]["cwd"] == str(tmp_path / "api")
    # ...unless the plugin names a context
    cmd = _send(server, "/goweb six", chat=PROJECT_CHAT, user_id=77)
    h.reply_to(PROJECT_CHAT, cmd, text="ran on codex")
    assert fake_codex.calls()[-1]["cwd"] == str(tmp_path / "web")
    assert [c["resume"] for c in fake_codex.calls()] == [None] * 4


def _topic_state(tmp_path: Path, thread: int) -> dict[str, Any]:
    state = json.loads((tmp_path / "telegram_topics_state.json").read_text())
    return dict(state["threads"][f"{FORUM}:{thread}"])


def test_run_one_in_a_topic_uses_its_binding_and_keeps_its_session(
    server, fake_codex, harness_factory, tmp_path, monkeypatch
):
    install(monkeypatch, go=go)
    server.add_chat(FORUM, is_forum=True)
    server.set_member(FORUM, server.bot_id, "administrator", can_manage_topics=True)
    server.set_member(FORUM, ADMIN, "administrator")
    h = harness_factory(
        runtime=_runtime(tmp_path),
        chat_id=FORUM,
        topics={"enabled": True, "scope": "main"},
        session_mode="stateless",  # topics keep sessions whatever the mode
        show_resume_line=False,
    ).start()
    topic = server.create_topic(FORUM, "t")

    def say(text: str) -> int:
        return _send(server, text, chat=FORUM, user_id=ADMIN, thread_id=topic)

    h.reply_to(FORUM, say("/ctx set api"), text="topic bound to api")
    cmd = say("/go in the topic")
    final = h.final_for(FORUM, cmd)
    assert final.thread_id == topic
    assert "codex resume" not in final.text and final.text.splitlines()[-1] == "ctx: api"
    h.reply_to(FORUM, cmd, text="ran on codex")
    assert fake_codex.calls()[0]["cwd"] == str(tmp_path / "api")
    session = _topic_state(tmp_path, topic)["sessions"]["codex"]["resume"]
    nxt = say("follow up")
    h.final_for(FORUM, nxt)
    assert fake_codex.calls()[1]["resume"] == session
    # the topic's default engine
    h.reply_to(FORUM, say("/agent set demo"), text="topic default engine set to demo")
    cmd = say("/go with demo")
    assert h.final_for(FORUM, cmd).text.startswith("done · demo · ")
    wait_until(lambda: "demo" in _topic_state(tmp_path, topic)["sessions"])


# --------------------------------------------------------------------------- run_many


def test_run_many_sequential_emits_one_run_after_the_other(
    server, fake_codex, harness_factory, tmp_path, monkeypatch
):
    async def many(ctx: Any) -> CommandResult:
        requests = [RunRequest(prompt=p) for p in ("wait gate_seq", "second", "third")]
        results = await ctx.executor.run_many(requests, mode="emit")
        return CommandResult(text="results: " + ", ".join(r.engine for r in results))

    install(monkeypatch, many=many)
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    cmd = _send(server, "/many")
    h.reply_to(CHAT, cmd, contains="wait gate_seq")  # the first run's progress
    fake_codex.open_gate("gate_seq")
    h.reply_to(CHAT, cmd, text="results: codex, codex, codex")
    assert [c["prompt"] for c in fake_codex.calls()] == ["wait gate_seq", "second", "third"]
    replies = server.bot_messages(CHAT, include_deleted=True)
    runs = [m for m in replies if m.reply_to_message_id == cmd and not m.text.startswith("res")]
    # in chat order: progress 1, final 1, progress 2, final 2, ...: each run starts after the
    # previous one has finished
    kinds = [("final" if m.text.startswith("done") else "progress") for m in runs]
    assert kinds == ["progress", "final"] * 3
    answers = [
        re.search(r"ok: ([\w ]+)", m.text).group(1) for m in runs if m.text.startswith("done")
    ]
    assert answers == ["wait gate_seq", "second", "third"]


def test_run_many_parallel_keeps_request_order_and_drops_failures(
    server, fake_codex, harness_factory, tmp_path, monkeypatch, log_capture
):
    async def many(ctx: Any) -> CommandResult:
        requests = [
            RunRequest(prompt="wait gate_par"),
            RunRequest(prompt="bad", context="not a context"),  # type: ignore[arg-type]
            RunRequest(prompt="quick"),
            RunRequest(prompt="on demo", engine="demo"),
        ]
        results = await ctx.executor.run_many(requests, mode="capture", parallel=True)
        lines = [f"{r.engine}: {r.message.text.split(chr(10))[2]}" for r in results]
        return CommandResult(text=" | ".join(lines))

    install(monkeypatch, many=many)
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    cmd = _send(server, "/many")
    # both codex runs are under way together; "quick" finishes while the first still waits
    wait_until(lambda: len(fake_codex.calls()) == 2)
    fake_codex.open_gate("gate_par")
    reply = h.reply_to(CHAT, cmd, prefix="codex")
    codex_wait, codex_quick, demo = reply.text.split(" | ")
    assert (codex_wait, codex_quick) == ("codex: ok: wait gate_par", "codex: ok: quick")
    assert demo.startswith("demo: This is takopi's built-in demo engine")
    # the bad request is missing from the results, and logged
    (failure,) = log_capture.events("telegram.executor.run_failed")
    assert "project" in failure["error"]
    # capture runs post nothing in the chat
    assert [m for m in server.bot_messages(CHAT) if m.reply_to_message_id == cmd] == [reply]
