"""End to end: threads, queueing, cancellation, sessions, commands."""

from __future__ import annotations

import json
import os
import re

import psutil
import pytest

from takopi.telegram.bridge import CANCEL_CALLBACK_DATA
from tests.support.waiting import wait_until
from tests.telegram.conftest import CHAT, missing_claude_entry

pytestmark = pytest.mark.timeout(90)

RESUME_RE = re.compile(r"codex resume (thread-[0-9a-f]+)")


def _resume_of(text: str) -> str:
    match = RESUME_RE.search(text)
    assert match is not None, text
    return match.group(1)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _group_gone(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and not _gone(proc.info["pid"]):
                return False
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return True


def test_reply_to_final_continues_the_thread(server, fake_codex, harness_factory):
    h = harness_factory().start()
    first = server.send_user_message(CHAT, "first")
    final1 = h.final_for(CHAT, first["message_id"])
    thread = _resume_of(final1.text)
    second = server.send_user_message(CHAT, "second", reply_to=final1.message_id)
    final2 = h.final_for(CHAT, second["message_id"])
    assert _resume_of(final2.text) == thread
    assert f"(resumed {thread})" in final2.text
    calls = fake_codex.calls()
    assert [c["resume"] for c in calls] == [None, thread]
    # the resume line itself is not part of the prompt
    assert calls[1]["prompt"] == "second"


def test_final_notify_off_edits_progress_in_place(server, fake_codex, harness_factory):
    h = harness_factory(final_notify=False).start()
    user = server.send_user_message(CHAT, "quiet please")
    final = h.final_for(CHAT, user["message_id"])
    assert "ok: quiet please" in final.text
    assert final.disable_notification  # it is the (silent) progress message, edited
    assert final.edits and final.edits[0].startswith("starting")
    assert final.buttons == []
    replies = [
        m
        for m in server.bot_messages(CHAT, include_deleted=True)
        if m.reply_to_message_id == user["message_id"]
    ]
    assert len(replies) == 1


def test_parallel_threads_and_queued_follow_up(server, fake_codex, harness_factory):
    h = harness_factory().start()
    a = server.send_user_message(CHAT, "wait gate_a")
    b = server.send_user_message(CHAT, "wait gate_b")
    # both agents run at the same time
    wait_until(lambda: len(fake_codex.calls()) == 2)
    progress_a = h.reply_to(CHAT, a["message_id"], contains="wait gate_a")
    # a reply to A's running progress message is queued on A's thread
    follow = server.send_user_message(CHAT, "after a", reply_to=progress_a.message_id)
    queued = h.reply_to(CHAT, follow["message_id"], prefix="queued")
    assert queued.buttons and queued.buttons[0]["callback_data"] == CANCEL_CALLBACK_DATA
    assert len(fake_codex.calls()) == 2  # not started while A runs
    fake_codex.open_gate("gate_b")
    final_b = h.final_for(CHAT, b["message_id"])
    assert "ok: wait gate_b" in final_b.text
    assert len(fake_codex.calls()) == 2
    fake_codex.open_gate("gate_a")
    final_a = h.final_for(CHAT, a["message_id"])
    thread_a = _resume_of(final_a.text)
    final_follow = h.final_for(CHAT, follow["message_id"])
    assert f"(resumed {thread_a})" in final_follow.text
    calls = fake_codex.calls()
    assert calls[-1]["resume"] == thread_a and calls[-1]["prompt"] == "after a"
    # the queued placeholder became the progress message of the follow-up and was replaced
    server.wait_for(lambda: server.message(CHAT, queued.message_id).deleted)


def test_cancel_by_reply_kills_the_process_group(server, fake_codex, harness_factory):
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "sleep 30")
    wait_until(lambda: fake_codex.calls())
    call = fake_codex.calls()[0]
    progress = h.reply_to(CHAT, user["message_id"], contains="sleep 30")
    server.send_user_message(CHAT, "/cancel", reply_to=progress.message_id)
    cancelled = h.wait_bot_message(
        CHAT, lambda m: m.message_id == progress.message_id and "cancelled" in m.text
    )
    assert cancelled.buttons == []
    assert _resume_of(cancelled.text)  # the resume line is kept
    wait_until(lambda: _gone(call["pid"]), timeout=10)
    wait_until(lambda: _group_gone(call["pgid"]), timeout=10)


def test_cancel_button(server, fake_codex, harness_factory):
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "sleep 30")
    wait_until(lambda: fake_codex.calls())
    call = fake_codex.calls()[0]
    progress = h.reply_to(CHAT, user["message_id"], contains="sleep 30")
    server.press_button(CHAT, progress.message_id, CANCEL_CALLBACK_DATA)
    answer = server.wait_for(lambda: server.callback_answers)
    assert answer[0].get("text") == "cancelling..."
    h.wait_bot_message(
        CHAT, lambda m: m.message_id == progress.message_id and "cancelled" in m.text
    )
    wait_until(lambda: _group_gone(call["pgid"]), timeout=10)
    # pressing again: nothing runs any more
    server.press_button(CHAT, progress.message_id, CANCEL_CALLBACK_DATA)
    wait_until(lambda: len(server.callback_answers) == 2)
    assert (
        server.callback_answers[1].get("text") == "nothing is currently running for that message."
    )
    # unknown callback data gets a bare answer
    server.press_button(CHAT, progress.message_id, "other:thing")
    wait_until(lambda: len(server.callback_answers) == 3)
    assert "text" not in server.callback_answers[2]


def test_cancel_queued_job_drops_it(server, fake_codex, harness_factory):
    h = harness_factory().start()
    a = server.send_user_message(CHAT, "wait gate_q")
    wait_until(lambda: fake_codex.calls())
    progress = h.reply_to(CHAT, a["message_id"], contains="wait gate_q")
    follow = server.send_user_message(CHAT, "queued one", reply_to=progress.message_id)
    queued = h.reply_to(CHAT, follow["message_id"], prefix="queued")
    server.press_button(CHAT, queued.message_id, CANCEL_CALLBACK_DATA)
    answers = server.wait_for(lambda: server.callback_answers)
    assert answers[0].get("text") == "dropped from queue."
    h.wait_bot_message(CHAT, lambda m: m.message_id == queued.message_id and "cancelled" in m.text)
    fake_codex.open_gate("gate_q")
    h.final_for(CHAT, a["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["wait gate_q"]


def test_cancel_without_reply_and_on_nothing(server, fake_codex, harness_factory):
    h = harness_factory().start()
    msg = server.send_user_message(CHAT, "/cancel")
    h.reply_to(CHAT, msg["message_id"], text="reply to the progress message to cancel.")
    msg2 = server.send_user_message(CHAT, "/cancel@takopi_test_bot", reply_to=msg["message_id"])
    h.reply_to(CHAT, msg2["message_id"], text="nothing is currently running for that message.")
    assert fake_codex.calls() == []


def test_unknown_slash_command_goes_to_the_agent(server, fake_codex, harness_factory):
    h = harness_factory().start()
    user = server.send_user_message(CHAT, "/frobnicate the widgets")
    final = h.final_for(CHAT, user["message_id"])
    assert "ok: /frobnicate the widgets" in final.text
    assert fake_codex.calls()[0]["prompt"] == "/frobnicate the widgets"


def test_forwards_are_coalesced_into_the_prompt(server, fake_codex, harness_factory):
    h = harness_factory(forward_coalesce_s=1.0).start()
    user = server.send_user_message(CHAT, "summarise these")
    server.send_user_message(CHAT, "forwarded one", forward_from=777)
    server.send_user_message(CHAT, "forwarded two", forward_from=778)
    final = h.final_for(CHAT, user["message_id"])
    assert "ok: summarise these" in final.text
    prompt = fake_codex.calls()[0]["prompt"]
    assert prompt == "summarise these\n\nforwarded one\n\nforwarded two"
    # a forward alone never starts a run
    server.send_user_message(CHAT, "lonely forward", forward_from=779)
    marker = server.send_user_message(CHAT, "marker")
    h.final_for(CHAT, marker["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == [prompt, "marker"]


def test_chat_session_mode_resumes_without_reply_and_new_clears(
    server, fake_codex, harness_factory, tmp_path
):
    h = harness_factory(session_mode="chat", show_resume_line=False).start()
    one = server.send_user_message(CHAT, "one")
    final1 = h.final_for(CHAT, one["message_id"])
    assert "codex resume" not in final1.text  # hidden in chat mode
    two = server.send_user_message(CHAT, "two")
    final2 = h.final_for(CHAT, two["message_id"])
    calls = fake_codex.calls()
    assert calls[0]["resume"] is None
    thread = calls[1]["resume"]
    assert thread is not None
    assert f"(resumed {thread})" in final2.text
    state = json.loads((tmp_path / "telegram_chat_sessions_state.json").read_text())
    assert state["version"] == 1
    assert state["chats"][f"{CHAT}:chat"]["sessions"]["codex"] == {"resume": thread}
    assert state["cwd"] == os.getcwd()
    new = server.send_user_message(CHAT, "/new")
    h.reply_to(CHAT, new["message_id"], text="cleared stored sessions for this chat.")
    three = server.send_user_message(CHAT, "three")
    h.final_for(CHAT, three["message_id"])
    assert fake_codex.calls()[2]["resume"] is None


def test_command_menu_is_synced(server, fake_codex, harness_factory):
    harness_factory(session_mode="chat").start()
    commands = server.wait_for(lambda: server.commands)
    names = [c["command"] for c in commands]
    assert names == ["codex", "new", "ctx", "agent", "model", "reasoning", "trigger", "cancel"]


def test_menu_lists_new_in_stateless_mode_and_follows_a_hot_reload(
    server, fake_codex, harness_factory, tmp_path
):
    """The reference always lists /new, and re-sends the menu after each reload."""
    from takopi.projects import ProjectConfig, ProjectsConfig

    h = harness_factory().start()
    first = server.wait_for(lambda: server.commands)
    assert "new" in [c["command"] for c in first] and "webapp" not in str(first)
    sent = len(server.calls("setMyCommands"))
    (tmp_path / "webapp").mkdir()
    h.runtime.update(
        projects=ProjectsConfig(
            projects={"webapp": ProjectConfig(alias="webapp", path=tmp_path / "webapp")}
        )
    )
    menu = server.wait_for(
        lambda: [c for c in (server.commands or []) if c["command"] == "webapp"], timeout=15
    )
    assert menu == [{"command": "webapp", "description": "work on: webapp"}]
    assert len(server.calls("setMyCommands")) == sent + 1


def test_failing_set_my_commands_is_not_fatal(server, fake_codex, harness_factory):
    server.inject("error", method="setMyCommands", count=5, description="Bad Request: nope")
    h = harness_factory().start()
    server.wait_for(lambda: server.calls("setMyCommands"))
    user = server.send_user_message(CHAT, "still works")
    assert "ok: still works" in h.final_for(CHAT, user["message_id"]).text


def test_project_directive_sets_cwd_and_ctx_footer(server, fake_codex, harness_factory, tmp_path):
    from takopi.projects import ProjectConfig, ProjectsConfig
    from tests.telegram.conftest import make_runtime

    proj_dir = tmp_path / "webapp"
    proj_dir.mkdir()
    projects = ProjectsConfig(projects={"web": ProjectConfig(alias="web", path=proj_dir)})
    runtime = make_runtime(tmp_path / "takopi.toml", projects)
    h = harness_factory(runtime=runtime).start()
    user = server.send_user_message(CHAT, "/web fix the bug")
    final = h.final_for(CHAT, user["message_id"])
    assert "ok: fix the bug" in final.text
    lines = final.text.splitlines()
    assert lines[-2] == "ctx: web" and lines[-1].startswith("codex resume")
    assert fake_codex.calls()[0]["cwd"] == str(proj_dir)
    # a reply carries the ctx line along: same project, same thread
    again = server.send_user_message(CHAT, "and the tests", reply_to=final.message_id)
    final2 = h.final_for(CHAT, again["message_id"])
    assert "ctx: web" in final2.text
    assert fake_codex.calls()[1]["cwd"] == str(proj_dir)
    # conflicting directives are a clear error, not a run
    bad = server.send_user_message(CHAT, "/web /web twice")
    err = h.reply_to(CHAT, bad["message_id"])
    # (soft line breaks read as spaces, as with the reference's renderer)
    assert err.text == "error: multiple project directives"
    assert len(fake_codex.calls()) == 2


def test_unknown_engine_gets_an_error_reply(server, fake_codex, harness_factory):
    from takopi.router import AutoRouter, RunnerEntry
    from takopi.runners.codex import build_runner
    from takopi.transport_runtime import TransportRuntime

    router = AutoRouter(
        [
            RunnerEntry(engine="codex", runner=build_runner({}, None)),
            missing_claude_entry(),
        ],
        default_engine="codex",
    )
    h = harness_factory(runtime=TransportRuntime(router=router)).start()
    user = server.send_user_message(CHAT, "/claude hello")
    reply = h.reply_to(CHAT, user["message_id"])
    assert reply.text.startswith("error · claude · 0s")
    assert "claude not found on PATH" in reply.text
    assert fake_codex.calls() == []


def test_plugin_slash_command_is_dispatched(server, fake_codex, harness_factory, monkeypatch):
    import takopi.telegram.dispatch as dispatch_mod
    from takopi.commands import CommandResult, RunRequest
    from takopi.config import ConfigError

    seen = {}

    class Hello:
        id = "hello"
        description = "say hello"

        async def handle(self, ctx):
            seen["args"] = ctx.args
            seen["plugin_config"] = ctx.plugin_config
            await ctx.executor.send("a plain *string* first")
            result = await ctx.executor.run_one(
                RunRequest(prompt="from the plugin"), mode="capture"
            )
            return CommandResult(
                text=f"hello **{ctx.args_text}** / {result.message.text.splitlines()[0]}"
            )

    class Broken:
        id = "broken"
        description = "always fails"

        async def handle(self, ctx):
            raise RuntimeError("plugin blew up in `my_file_name.py` *here*")

    backends = {"hello": Hello(), "broken": Broken()}

    def get_command(cid, allowlist=None, required=True):
        if cid == "unloadable":
            raise ConfigError("Failed to load command 'unloadable': ImportError: no _module_")
        return backends.get(cid)

    monkeypatch.setattr(
        dispatch_mod, "list_command_ids", lambda allowlist=None: [*sorted(backends), "unloadable"]
    )
    monkeypatch.setattr(dispatch_mod, "get_command", get_command)
    h = harness_factory().start()
    commands = server.wait_for(lambda: server.commands)
    assert {"command": "hello", "description": "say hello"} in commands
    msg = server.send_user_message(CHAT, "/hello big world")
    reply = h.reply_to(CHAT, msg["message_id"], prefix="hello")
    # CommandResult.text is plain text, as in the reference: the Markdown arrives literally
    assert re.fullmatch(r"hello \*\*big world\*\* / done · codex · \d+s", reply.text)
    assert reply.entities == []
    plain = h.wait_bot_message(CHAT, lambda m: m.text == "a plain *string* first")
    assert plain.entities == []
    assert seen["args"] == ("big", "world")
    assert fake_codex.calls()[0]["prompt"] == "from the plugin"
    bad = server.send_user_message(CHAT, "/broken")
    err = h.reply_to(CHAT, bad["message_id"])
    assert err.text == "error:\nplugin blew up in `my_file_name.py` *here*"
    assert err.entities == []
    # a command that fails to load says why, in plain text
    unloadable = server.send_user_message(CHAT, "/unloadable")
    err = h.reply_to(CHAT, unloadable["message_id"])
    assert err.text == "error:\nFailed to load command 'unloadable': ImportError: no _module_"
    assert err.entities == []
    assert len(fake_codex.calls()) == 1


def test_command_ids_exposed_by_the_runtime_are_dispatched(
    server, fake_codex, harness_factory, tmp_path, monkeypatch
):
    """A supervisor can list command plugins that live in other interpreters."""
    import takopi.telegram.dispatch as dispatch_mod
    from takopi.commands import CommandResult
    from tests.telegram.conftest import make_runtime

    class Remote:
        id = "remote"
        description = "runs elsewhere"

        async def handle(self, ctx):
            return CommandResult(text="remote says hi", notify=False)

    class WithCommands:
        def __init__(self, inner):
            self._inner = inner

        def command_ids(self):
            return ["remote"]

        def __getattr__(self, name):
            return getattr(self._inner, name)

    monkeypatch.setattr(dispatch_mod, "list_command_ids", lambda allowlist=None: [])
    monkeypatch.setattr(
        dispatch_mod,
        "get_command",
        lambda cid, allowlist=None, required=True: Remote() if cid == "remote" else None,
    )
    h = harness_factory(runtime=WithCommands(make_runtime(tmp_path / "takopi.toml"))).start()
    msg = server.send_user_message(CHAT, "/remote")
    reply = h.reply_to(CHAT, msg["message_id"])
    assert reply.text == "remote says hi" and reply.disable_notification
    assert fake_codex.calls() == []


def test_file_command_without_file_transfer(server, fake_codex, harness_factory):
    h = harness_factory().start()
    msg = server.send_user_message(CHAT, "/file get README.md")
    reply = h.reply_to(CHAT, msg["message_id"])
    assert reply.text == "file transfer disabled; enable [transports.telegram.files]."
    # documents are ignored silently when file transfer is off, even with a caption
    server.send_user_message(CHAT, caption="please run this")
    marker = server.send_user_message(CHAT, "marker")
    h.final_for(CHAT, marker["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["marker"]


def test_split_overflow_with_final_notify_off(server, fake_codex, harness_factory):
    h = harness_factory(message_overflow="split", final_notify=False).start()
    user = server.send_user_message(CHAT, "long 8000")
    first = h.final_for(CHAT, user["message_id"])
    assert first.disable_notification and first.edits  # the progress message, edited
    rest = server.wait_for(
        lambda: [m for m in server.bot_messages(CHAT) if "continued (" in m.text]
    )
    assert all(RESUME_RE.search(m.text) for m in rest)
    assert all(m.reply_to_message_id == first.message_id for m in rest)

    # Live, the transport knows the message still shows progress: it marks it pending (the
    # first part, progress keyboard kept), sends the rest, then commits — no commit tried first.
    def keyboards() -> list[bool]:
        finals = [
            c
            for c in server.calls("editMessageText")
            if c["message_id"] == first.message_id and c["text"].startswith("done")
        ]
        return [bool((c.get("reply_markup") or {}).get("inline_keyboard")) for c in finals]

    server.wait_for(lambda: len(keyboards()) >= 2 and not keyboards()[-1])  # committed
    assert keyboards() == [True, False]


def test_an_engine_that_failed_to_load_does_not_shadow_a_command(
    server, fake_codex, harness_factory, monkeypatch
):
    """In the reference a broken engine plugin is not an engine: /<id> reaches the command
    plugin of that id and /agent set refuses it (parity-gaps Part 3)."""
    import takopi.telegram.dispatch as dispatch_mod
    from takopi.commands import CommandResult
    from takopi.router import AutoRouter, RunnerEntry
    from takopi.runners.codex import build_runner
    from takopi.transport_runtime import TransportRuntime

    class Broken:
        engine = "bad"

        def is_resume_line(self, line):
            return False

        def extract_resume(self, text):
            return None

    class BadCommand:
        id = "bad"
        description = "a command named like the broken engine"

        async def handle(self, ctx):
            return CommandResult(text="the command ran")

    monkeypatch.setattr(dispatch_mod, "list_command_ids", lambda allowlist=None: ["bad"])
    monkeypatch.setattr(
        dispatch_mod, "get_command", lambda cid, allowlist=None, required=True: BadCommand()
    )
    router = AutoRouter(
        [
            RunnerEntry(engine="codex", runner=build_runner({}, None)),
            RunnerEntry(engine="bad", runner=Broken(), status="load_error", issue="ImportError"),
        ],
        default_engine="codex",
    )
    h = harness_factory(runtime=TransportRuntime(router=router)).start()
    msg = server.send_user_message(CHAT, "/bad hi")
    assert h.reply_to(CHAT, msg["message_id"]).text == "the command ran"
    refused = server.send_user_message(CHAT, "/agent set bad")
    assert h.reply_to(CHAT, refused["message_id"]).text == (
        "unknown engine bad. available engines: codex"
    )
    assert fake_codex.calls() == []


def test_voice_notes_are_checked_against_the_trigger_mode_first(
    server, fake_codex, harness_factory
):
    """Routing order: trigger before voice — in mentions mode a voice note that does not
    reply to the bot gets no answer at all."""
    group = -4004
    server.add_chat(group)
    server.set_member(group, 7, "administrator")
    h = harness_factory(chat_id=group).start()
    mode = server.send_user_message(group, "/trigger mentions", user_id=7)
    h.reply_to(group, mode["message_id"])
    voice = {"voice": {"file_id": "v1", "file_unique_id": "u1", "duration": 2}}
    server.send_user_message(group, None, user_id=8, extra=voice)
    marker = server.send_user_message(group, "@takopi_test_bot marker", user_id=8)
    h.final_for(group, marker["message_id"])
    replies = [m for m in server.bot_messages(group) if "voice" in m.text]
    assert replies == []
    # with mentions off, the same voice note is answered (here: the disabled hint)
    reset = server.send_user_message(group, "/trigger all", user_id=7)
    h.reply_to(group, reset["message_id"])
    again = server.send_user_message(group, None, user_id=8, extra=voice)
    hint = h.reply_to(group, again["message_id"])
    assert hint.text.startswith("voice transcription is disabled.")
