"""End to end: /agent, /model, /reasoning, /trigger, /ctx in a chat, with the reference's
texts (parity-gaps.md Part 2 §A), and the per-run note of an ignored reasoning override."""

from __future__ import annotations

import json

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.router import AutoRouter, RunnerEntry
from takopi.runners.codex import build_runner as build_codex
from takopi.runners.demo import build_runner as build_demo
from takopi.transport_runtime import TransportRuntime
from tests.telegram.conftest import CHAT, make_runtime, missing_claude_entry

pytestmark = pytest.mark.timeout(120)

GROUP = -3003


def _runtime(tmp_path, *, demo: bool = False, projects=None) -> TransportRuntime:
    """codex available, claude missing its CLI (and optionally the runnable demo engine)."""
    entries = [
        RunnerEntry(engine="codex", runner=build_codex({}, None)),
        missing_claude_entry(),
    ]
    if demo:
        entries.append(RunnerEntry(engine="demo", runner=build_demo({}, tmp_path / "x.toml")))
    return TransportRuntime(
        router=AutoRouter(entries, default_engine="codex"),
        projects=projects,
        config_path=tmp_path / "takopi.toml",
    )


def _reply(h, server, chat, text, **kw):
    msg = server.send_user_message(chat, text, **kw)
    return h.reply_to(chat, msg["message_id"])


def test_agent_texts_validation_and_persistence(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    shown = _reply(h, server, CHAT, "/agent")
    assert shown.text == (
        "engine: codex (global default)\n\nmodel: default (no override)\n\n"
        "reasoning: default (no override)\n\n"
        "defaults: topic: none, chat: none, project: none, global: codex\n\n"
        "available: codex, claude"
    )
    assert shown.entities == []
    unknown = _reply(h, server, CHAT, "/agent set nope")
    assert unknown.text == "unknown engine nope. available engines: codex, claude"
    ok = _reply(h, server, CHAT, "/agent set claude")
    assert ok.text == "chat default engine set to claude"
    assert [e["type"] for e in ok.entities] == ["code"]
    prefs = json.loads((tmp_path / "telegram_chat_prefs_state.json").read_text())
    assert prefs["chats"][str(CHAT)]["default_engine"] == "claude"
    assert _reply(h, server, CHAT, "/agent").text.startswith("engine: claude (chat default)")
    assert _reply(h, server, CHAT, "/agent clear").text == "chat default engine cleared."
    usage = _reply(h, server, CHAT, "/agent frob")
    assert usage.text == "usage: /agent, /agent set <engine>, or /agent clear"


def test_model_texts_and_validation(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory(runtime=_runtime(tmp_path)).start()
    assert _reply(h, server, CHAT, "/model").text == (
        "engine: codex (global default)\n\nmodel: default (no override)\n\n"
        "defaults: topic: none, chat: none\n\navailable engines: codex, claude"
    )
    ok = _reply(h, server, CHAT, "/model set gpt-test-1")
    assert ok.text == (
        "chat model override set to gpt-test-1 for codex. "
        "If you want a clean start on the new model, run /new."
    )
    shown = _reply(h, server, CHAT, "/model")
    assert "model: gpt-test-1 (chat default)" in shown.text
    assert "defaults: topic: none, chat: gpt-test-1" in shown.text
    # an engine alone is not a model
    usage = _reply(h, server, CHAT, "/model set codex")
    assert usage.text == (
        "usage: /model, /model set <model>, /model set <engine> <model>, or /model clear [engine]"
    )
    assert (
        _reply(h, server, CHAT, "/model clear nope").text
        == "unknown engine nope. available engines: codex, claude"
    )
    multi = _reply(h, server, CHAT, "/model set claude opus 4")
    assert multi.text.startswith("chat model override set to opus 4 for claude.")
    user = server.send_user_message(CHAT, "go")
    h.final_for(CHAT, user["message_id"])
    argv = fake_codex.calls()[0]["argv"]
    assert argv[argv.index("--model") + 1] == "gpt-test-1"
    assert _reply(h, server, CHAT, "/model clear").text == "chat model override cleared."
    prefs = json.loads((tmp_path / "telegram_chat_prefs_state.json").read_text())
    assert prefs["chats"][str(CHAT)]["engine_overrides"] == {
        "claude": {"model": "opus 4", "reasoning": None}
    }


def test_reasoning_texts_and_the_per_run_note(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory(runtime=_runtime(tmp_path, demo=True)).start()
    assert _reply(h, server, CHAT, "/reasoning").text == (
        "engine: codex (global default)\n\nreasoning: default (no override)\n\n"
        "defaults: topic: none, chat: none\n\n"
        "available levels: minimal, low, medium, high, xhigh"
    )
    bad = _reply(h, server, CHAT, "/reasoning set extreme")
    assert bad.text == (
        "unknown reasoning level extreme. available levels: minimal, low, medium, high, xhigh"
    )
    ok = _reply(h, server, CHAT, "/reasoning set high")
    assert ok.text == (
        "chat reasoning override set to high for codex. "
        "If you want a clean start on the new setting, run /new."
    )
    demo = _reply(h, server, CHAT, "/reasoning set demo low")
    assert demo.text.startswith("chat reasoning override set to low for demo.")
    user = server.send_user_message(CHAT, "go")
    h.final_for(CHAT, user["message_id"])
    assert "model_reasoning_effort=high" in fake_codex.calls()[0]["argv"]
    # demo (like claude, opencode, pi) cannot use it: the run's progress says so
    other = server.send_user_message(CHAT, "/demo hello")
    final = h.final_for(CHAT, other["message_id"], timeout=40)
    progress = h.wait_bot_message(
        CHAT,
        lambda m: (
            m.reply_to_message_id == other["message_id"]
            and any("reasoning override is not supported for demo; ignoring." in t for t in m.edits)
        ),
        include_deleted=True,
    )
    assert progress.disable_notification
    assert "reasoning override is not supported" not in final.text
    assert _reply(h, server, CHAT, "/reasoning clear").text == "chat reasoning override cleared."
    usage = _reply(h, server, CHAT, "/reasoning frob")
    assert usage.text == (
        "usage: /reasoning, /reasoning set <level>, /reasoning set <engine> <level>, "
        "or /reasoning clear [engine]"
    )


def test_ctx_binding_texts_and_errors(server, fake_codex, harness_factory, tmp_path):
    proj = tmp_path / "api"
    proj.mkdir()
    runtime = make_runtime(
        tmp_path / "takopi.toml",
        ProjectsConfig(projects={"api": ProjectConfig(alias="api", path=proj)}),
    )
    h = harness_factory(runtime=runtime).start()
    assert _reply(h, server, CHAT, "/ctx").text == (
        "bound ctx: none resolved ctx: none (source: none) "
        "note: no bound context — bind with /ctx set <project> [@branch]"
    )
    usage = "usage: /ctx set <project> [@branch]"
    assert _reply(h, server, CHAT, "/ctx set nope").text == f"error: unknown project 'nope' {usage}"
    assert (
        _reply(h, server, CHAT, "/ctx set api main").text
        == f"error: branch must be prefixed with @ {usage}"
    )
    assert _reply(h, server, CHAT, "/ctx set a b c").text == f"error: too many arguments {usage}"
    assert _reply(h, server, CHAT, "/ctx set @b").text == f"error: project is required {usage}"
    assert _reply(h, server, CHAT, "/ctx frob").text == (
        "unknown /ctx command. use /ctx, /ctx set, or /ctx clear."
    )
    assert _reply(h, server, CHAT, "/ctx set api").text == "chat bound to api"
    shown = _reply(h, server, CHAT, "/ctx")
    assert shown.text == "bound ctx: api resolved ctx: api (source: bound)"
    user = server.send_user_message(CHAT, "work")
    final = h.final_for(CHAT, user["message_id"])
    assert "ctx: api" in final.text
    assert fake_codex.calls()[0]["cwd"] == str(proj)
    assert _reply(h, server, CHAT, "/ctx clear").text == "chat context cleared."
    user2 = server.send_user_message(CHAT, "no ctx")
    final2 = h.final_for(CHAT, user2["message_id"])
    assert "ctx:" not in final2.text


def test_trigger_texts_admin_refusals_and_filtering(server, fake_codex, harness_factory):
    server.add_chat(GROUP)
    h = harness_factory(chat_id=GROUP).start()
    assert _reply(h, server, GROUP, "/trigger", user_id=50).text == (
        "trigger: all (default)\n\ndefaults: topic: none, chat: none\n\navailable: all, mentions"
    )
    denied = _reply(h, server, GROUP, "/trigger mentions", user_id=50)
    assert denied.text == "changing trigger mode is restricted to group admins."
    assert (
        _reply(h, server, GROUP, "/agent set codex", user_id=50).text
        == "changing default engines is restricted to group admins."
    )
    assert (
        _reply(h, server, GROUP, "/model set x", user_id=50).text
        == "changing model overrides is restricted to group admins."
    )
    server.set_member(GROUP, 51, "administrator")
    ok = _reply(h, server, GROUP, "/trigger mentions", user_id=51)
    assert ok.text == "chat trigger mode set to mentions"
    assert _reply(h, server, GROUP, "/trigger", user_id=50).text.startswith(
        "trigger: mentions (chat default)\n\ndefaults: topic: none, chat: mentions"
    )
    server.send_user_message(GROUP, "just chatting", user_id=50)
    mention = server.send_user_message(GROUP, "@takopi_test_bot please run", user_id=50)
    final = h.final_for(GROUP, mention["message_id"])
    assert "ok: please run" in final.text  # the leading mention is not an @branch
    # replying to the bot also triggers
    reply = server.send_user_message(GROUP, "and this", user_id=50, reply_to=final.message_id)
    h.final_for(GROUP, reply["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["please run", "and this"]
    usage = _reply(h, server, GROUP, "/trigger x", user_id=51)
    assert usage.text == "usage: /trigger, /trigger all, /trigger mentions, or /trigger clear"
    reset = _reply(h, server, GROUP, "/trigger clear", user_id=51)
    assert reset.text == "chat trigger mode reset to all."


def test_mentions_mode_applies_in_private_chats_too(server, fake_codex, harness_factory):
    h = harness_factory().start()
    assert _reply(h, server, CHAT, "/trigger mentions").text == (
        "chat trigger mode set to mentions"
    )
    server.send_user_message(CHAT, "not for the bot")
    hit = server.send_user_message(CHAT, "hey @takopi_test_bot run this")
    h.final_for(CHAT, hit["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["hey @takopi_test_bot run this"]
    assert _reply(h, server, CHAT, "/trigger all").text == "chat trigger mode set to all"
    plain = server.send_user_message(CHAT, "now anything")
    h.final_for(CHAT, plain["message_id"])
    assert fake_codex.calls()[-1]["prompt"] == "now anything"
