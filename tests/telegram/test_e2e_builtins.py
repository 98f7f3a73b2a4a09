"""End to end: /agent, /model, /reasoning, /trigger, /ctx (chat-level preferences)."""

from __future__ import annotations

import json

import pytest

from takopi.projects import ProjectConfig, ProjectsConfig
from tests.telegram.conftest import CHAT, make_runtime

pytestmark = pytest.mark.timeout(120)

GROUP = -3003


def _reply(h, server, chat, text, **kw):
    msg = server.send_user_message(chat, text, **kw)
    return h.reply_to(chat, msg["message_id"])


def test_model_and_reasoning_overrides_reach_codex(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory().start()
    shown = _reply(h, server, CHAT, "/model")
    assert "engine: codex (global default)" in shown.text
    assert "model: default (no override)" in shown.text
    ok = _reply(h, server, CHAT, "/model set gpt-test-1")
    assert ok.text.startswith("model override for codex set to gpt-test-1.")
    bad = _reply(h, server, CHAT, "/reasoning set extreme")
    assert bad.text.startswith("invalid reasoning level extreme.")
    _reply(h, server, CHAT, "/reasoning set high")
    user = server.send_user_message(CHAT, "go")
    h.final_for(CHAT, user["message_id"])
    argv = fake_codex.calls()[0]["argv"]
    assert argv[argv.index("--model") + 1] == "gpt-test-1"
    assert "model_reasoning_effort=high" in argv
    prefs = json.loads((tmp_path / "telegram_chat_prefs_state.json").read_text())
    assert prefs["chats"][str(CHAT)]["engine_overrides"]["codex"] == {
        "model": "gpt-test-1",
        "reasoning": "high",
    }
    _reply(h, server, CHAT, "/model clear")
    _reply(h, server, CHAT, "/reasoning clear codex")
    prefs = json.loads((tmp_path / "telegram_chat_prefs_state.json").read_text())
    assert prefs["chats"] == {}  # empty entries are removed


def test_agent_set_validates_and_persists(server, fake_codex, harness_factory, tmp_path):
    h = harness_factory().start()
    unknown = _reply(h, server, CHAT, "/agent set nope")
    assert unknown.text == "unknown engine nope.\navailable engines: codex"
    _reply(h, server, CHAT, "/agent set codex")
    shown = _reply(h, server, CHAT, "/agent")
    assert "engine: codex (chat default)" in shown.text
    assert "available: codex" in shown.text
    usage = _reply(h, server, CHAT, "/agent frob")
    assert usage.text == "usage: /agent, /agent set <engine>, or /agent clear"


def test_ctx_binding_sets_the_project(server, fake_codex, harness_factory, tmp_path):
    proj = tmp_path / "api"
    proj.mkdir()
    runtime = make_runtime(
        tmp_path / "takopi.toml",
        ProjectsConfig(projects={"api": ProjectConfig(alias="api", path=proj)}),
    )
    h = harness_factory(runtime=runtime).start()
    assert _reply(h, server, CHAT, "/ctx set nope").text == "error:\nunknown project 'nope'"
    assert (
        _reply(h, server, CHAT, "/ctx set api main").text
        == "error:\nbranch must be prefixed with @"
    )
    assert _reply(h, server, CHAT, "/ctx set api").text == "chat context set to api."
    shown = _reply(h, server, CHAT, "/ctx")
    assert "bound ctx: api" in shown.text and "(source: bound)" in shown.text
    user = server.send_user_message(CHAT, "work")
    final = h.final_for(CHAT, user["message_id"])
    assert "ctx: api" in final.text
    assert fake_codex.calls()[0]["cwd"] == str(proj)
    _reply(h, server, CHAT, "/ctx clear")
    user2 = server.send_user_message(CHAT, "no ctx")
    final2 = h.final_for(CHAT, user2["message_id"])
    assert "ctx:" not in final2.text


def test_trigger_mentions_in_a_group_needs_admin_and_filters(server, fake_codex, harness_factory):
    server.add_chat(GROUP)
    h = harness_factory(chat_id=GROUP).start()
    denied = _reply(h, server, GROUP, "/trigger mentions", user_id=50)
    assert "restricted to group admins" in denied.text
    server.set_member(GROUP, 51, "administrator")
    ok = _reply(h, server, GROUP, "/trigger mentions", user_id=51)
    assert ok.text == "chat trigger mode set to mentions."
    server.send_user_message(GROUP, "just chatting", user_id=50)
    mention = server.send_user_message(GROUP, "@takopi_test_bot please run", user_id=50)
    final = h.final_for(GROUP, mention["message_id"])
    assert "ok: please run" in final.text  # the leading mention is not an @branch
    # replying to the bot also triggers
    reply = server.send_user_message(GROUP, "and this", user_id=50, reply_to=final.message_id)
    h.final_for(GROUP, reply["message_id"])
    assert [c["prompt"] for c in fake_codex.calls()] == ["please run", "and this"]
    reset = _reply(h, server, GROUP, "/trigger clear", user_id=51)
    assert reset.text == "chat trigger mode reset to all."
