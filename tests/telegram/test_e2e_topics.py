"""End to end: forum topics (scope, startup validation, /topic, per-topic context, sessions,
engine, trigger and overrides, /new and /ctx inside topics, the unbound-topic notice, and
``telegram_topics_state.json`` in the reference format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from takopi.config import ConfigError
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.telegram.backend import first_config_error
from takopi.telegram.topics import TopicScope
from tests.support.waiting import wait_until
from tests.telegram.conftest import make_runtime

pytestmark = pytest.mark.timeout(120)

FORUM = -100777
ADMIN = 501
MEMBER = 502
TOPICS_MAIN = {"enabled": True, "scope": "main"}


def _forum(server, *, rights: bool = True) -> None:
    server.add_chat(FORUM, is_forum=True)
    if rights:
        server.set_member(FORUM, server.bot_id, "administrator", can_manage_topics=True)
    server.set_member(FORUM, ADMIN, "administrator")


def _projects(tmp_path: Path) -> ProjectsConfig:
    api = tmp_path / "api"
    web = tmp_path / "web"
    api.mkdir(exist_ok=True)
    web.mkdir(exist_ok=True)
    return ProjectsConfig(
        projects={
            "api": ProjectConfig(alias="api", path=api),
            "web": ProjectConfig(alias="web", path=web),
        }
    )


def _start(harness_factory, tmp_path, **settings):
    runtime = make_runtime(tmp_path / "takopi.toml", _projects(tmp_path))
    values = {
        "chat_id": FORUM,
        "topics": TOPICS_MAIN,
        "session_mode": "chat",
        "show_resume_line": False,  # what onboarding's "workspace" writes
        **settings,
    }
    return harness_factory(runtime=runtime, **values).start()


def _say(server, text, *, thread=None, user=ADMIN, **kw):
    return server.send_user_message(FORUM, text, user_id=user, thread_id=thread, **kw)


def _reply(h, server, text, *, thread=None, user=ADMIN):
    msg = _say(server, text, thread=thread, user=user)
    return h.reply_to(FORUM, msg["message_id"])


def _state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "telegram_topics_state.json").read_text())


def _startup_error(h) -> BaseException | None:
    """The ConfigError ``build_and_run`` would raise (the worker exits with EX_CONFIG)."""
    wait_until(lambda: h._future.done(), timeout=20)
    exc = h._future.exception()
    h._future = None  # consumed here; stop() must not re-raise it
    return first_config_error(exc) if exc is not None else None


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("group", "is a group, topics need a supergroup"),
        ("no_forum", "topics are not enabled in chat"),
        ("no_rights", "the bot must be an admin with 'manage topics'"),
    ],
)
def test_startup_validation_is_fatal(
    server, fake_codex, harness_factory, tmp_path, setup, expected
):
    if setup == "group":
        server.add_chat(FORUM, type="group")
    elif setup == "no_forum":
        server.add_chat(FORUM)
        server.set_member(FORUM, server.bot_id, "administrator", can_manage_topics=True)
    else:
        _forum(server, rights=False)
    h = harness_factory(chat_id=FORUM, topics=TOPICS_MAIN)
    h.start(wait_ready=False)
    exc = _startup_error(h)
    assert isinstance(exc, ConfigError) and expected in str(exc), exc
    assert server.bot_messages(FORUM) == []  # not even the startup message


def test_startup_message_and_menu_show_topics(server, fake_codex, harness_factory, tmp_path):
    _forum(server)
    _start(harness_factory, tmp_path, topics={"enabled": True, "scope": "auto"})
    ready = server.bot_messages(FORUM)[0]
    assert "topics: enabled (scope=auto (main))" in ready.text
    menu = server.wait_for(lambda: server.commands)
    assert [c["command"] for c in menu][-3:] == ["trigger", "topic", "cancel"]


def test_topic_command_creates_finds_and_recreates(server, fake_codex, harness_factory, tmp_path):
    _forum(server)
    h = _start(harness_factory, tmp_path)
    assert _reply(h, server, "/topic").text == "usage: /topic <project> @branch"
    assert _reply(h, server, "/topic api").text == "usage: /topic <project> @branch"
    assert _reply(h, server, "/topic nope @x").text.startswith("error: unknown project 'nope'")
    created = _reply(h, server, "/topic api @feat")
    assert created.text == "created topic api @feat."
    (thread,) = [t for t, name in server.topics(FORUM).items() if name == "api @feat"]
    bound = h.wait_bot_message(FORUM, lambda m: m.thread_id == thread)
    assert bound.text == "topic bound to api @feat"
    key = f"{FORUM}:{thread}"
    assert _state(tmp_path) == {
        "version": 1,
        "threads": {
            key: {
                "context": {"project": "api", "branch": "feat"},
                "sessions": {},
                "topic_title": "api @feat",
                "default_engine": None,
                "trigger_mode": None,
                "engine_overrides": {},
            }
        },
    }
    again = _reply(h, server, "/topic api @feat")
    assert again.text == "topic already exists for api @feat in this chat."
    assert len(server.topics(FORUM)) == 1
    # deleted by hand: the stale binding is dropped and the topic created again
    server.delete_topic(FORUM, thread)
    recreated = _reply(h, server, "/topic api @feat")
    assert recreated.text == "created topic api @feat."
    (new_thread,) = server.topics(FORUM)
    assert new_thread != thread
    assert list(_state(tmp_path)["threads"]) == [f"{FORUM}:{new_thread}"]


def test_topics_have_their_own_context_sessions_and_new(
    server, fake_codex, harness_factory, tmp_path
):
    _forum(server)
    h = _start(harness_factory, tmp_path)
    t_api = server.create_topic(FORUM, "first")
    t_web = server.create_topic(FORUM, "second")
    # an unbound topic of the main chat gets the notice, no run
    notice = _reply(h, server, "hello", thread=t_api)
    assert notice.text.startswith("this topic isn't bound to a project yet.")
    assert notice.thread_id == t_api
    assert fake_codex.calls() == []
    # /ctx set binds and renames the topic
    assert _reply(h, server, "/ctx set api", thread=t_api).text == "topic bound to api"
    wait_until(lambda: server.topics(FORUM)[t_api] == "api")
    # a project directive binds an unbound topic too (and renames it)
    first_web = _say(server, "/web start", thread=t_web)
    final_web = h.final_for(FORUM, first_web["message_id"])
    assert final_web.thread_id == t_web
    assert server.topics(FORUM)[t_web] == "web"
    first = _say(server, "one", thread=t_api)
    final = h.final_for(FORUM, first["message_id"])
    assert final.thread_id == t_api and "ctx: api" in final.text
    assert "codex resume" not in final.text  # topics are stateful: resume lines hidden
    second = _say(server, "two", thread=t_api)
    h.final_for(FORUM, second["message_id"])
    calls = fake_codex.calls()
    assert [c["prompt"] for c in calls] == ["start", "one", "two"]
    assert calls[0]["cwd"] == str(tmp_path / "web") and calls[1]["cwd"] == str(tmp_path / "api")
    # each topic has its own session: "two" resumed "one", not the web topic's thread
    assert calls[1]["resume"] is None and calls[2]["resume"] is not None
    state = _state(tmp_path)["threads"]
    assert state[f"{FORUM}:{t_api}"]["sessions"]["codex"]["resume"] == calls[2]["resume"]
    assert state[f"{FORUM}:{t_web}"]["sessions"]["codex"]["resume"] != calls[2]["resume"]
    shown = _reply(h, server, "/ctx", thread=t_api)
    assert shown.text == (
        "topics: enabled (scope=main) bound ctx: api resolved ctx: api (source: topic) "
        "sessions: codex"
    )
    cleared = _reply(h, server, "/new", thread=t_api)
    assert cleared.text == "cleared stored sessions for this topic."
    third = _say(server, "three", thread=t_api)
    h.final_for(FORUM, third["message_id"])
    assert fake_codex.calls()[-1]["resume"] is None
    # chat sessions are not used inside topics
    assert not (tmp_path / "telegram_chat_sessions_state.json").exists() or (
        json.loads((tmp_path / "telegram_chat_sessions_state.json").read_text())["chats"] == {}
    )


def test_topic_settings_override_the_chat(server, fake_codex, harness_factory, tmp_path):
    _forum(server)
    h = _start(harness_factory, tmp_path)
    topic = server.create_topic(FORUM, "t")
    other = server.create_topic(FORUM, "u")
    _reply(h, server, "/ctx set api", thread=topic)
    _reply(h, server, "/ctx set api", thread=other)
    ok = _reply(h, server, "/model set gpt-topic", thread=topic)
    assert ok.text.startswith("topic model override set to gpt-topic for codex.")
    assert _reply(h, server, "/agent set codex", thread=topic).text == (
        "topic default engine set to codex"
    )
    assert _reply(h, server, "/agent set codex", user=MEMBER, thread=topic).text == (
        "changing default engines is restricted to group admins."
    )
    _reply(h, server, "/model set gpt-chat")  # chat level (General topic)
    shown = _reply(h, server, "/agent", thread=topic)
    assert shown.text.startswith(
        "engine: codex (topic default)\n\nmodel: gpt-topic (topic override)"
    )
    assert "defaults: topic: codex, chat: none, project: none, global: codex" in shown.text
    assert _reply(h, server, "/trigger mentions", thread=topic).text == (
        "topic trigger mode set to mentions"
    )
    entry = _state(tmp_path)["threads"][f"{FORUM}:{topic}"]
    assert entry["default_engine"] == "codex" and entry["trigger_mode"] == "mentions"
    assert entry["engine_overrides"] == {"codex": {"model": "gpt-topic", "reasoning": None}}
    # mentions only in that topic; the other topic runs everything with the chat's model
    _say(server, "ignored here", thread=topic, user=MEMBER)
    run_other = _say(server, "runs here", thread=other, user=MEMBER)
    h.final_for(FORUM, run_other["message_id"])
    mention = _say(server, "@takopi_test_bot go", thread=topic, user=MEMBER)
    h.final_for(FORUM, mention["message_id"])
    calls = fake_codex.calls()
    assert [c["prompt"] for c in calls] == ["runs here", "go"]
    model = [c["argv"][c["argv"].index("--model") + 1] for c in calls]
    assert model == ["gpt-chat", "gpt-topic"]
    cleared = _reply(h, server, "/trigger clear", thread=topic)
    assert cleared.text == "topic trigger mode cleared (using chat default)."


def test_reference_state_file_is_used_unchanged(server, fake_codex, harness_factory, tmp_path):
    _forum(server)
    topic = server.create_topic(FORUM, "web")
    (tmp_path / "telegram_topics_state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "threads": {
                    f"{FORUM}:{topic}": {
                        "context": {"project": "web", "branch": None},
                        "sessions": {"codex": {"resume": "thread-from-reference"}},
                        "topic_title": "web",
                        "default_engine": None,
                        "trigger_mode": None,
                        "engine_overrides": {},
                    }
                },
            },
            indent=2,
            sort_keys=True,
        )
    )
    h = _start(harness_factory, tmp_path)
    msg = _say(server, "carry on", thread=topic)
    final = h.final_for(FORUM, msg["message_id"])
    assert "ok: carry on (resumed thread-from-reference)" in final.text
    call = fake_codex.calls()[0]
    assert call["resume"] == "thread-from-reference" and call["cwd"] == str(tmp_path / "web")


def test_topic_command_is_a_prompt_when_topics_are_off(server, fake_codex, harness_factory):
    h = harness_factory().start()
    msg = server.send_user_message(1001, "/topic api @feat")
    final = h.final_for(1001, msg["message_id"])
    assert "ok: /topic api @feat" in final.text


def test_topic_scope_resolution(tmp_path):
    chat_project = ProjectsConfig(
        projects={"api": ProjectConfig(alias="api", path=tmp_path, chat_id=-200)},
        chat_map={-200: "api"},
    )
    runtime = make_runtime(tmp_path / "takopi.toml", chat_project)
    plain = make_runtime(tmp_path / "takopi.toml")

    def scope(name, rt):
        return TopicScope(enabled=True, scope=name, main_chat_id=-100, runtime=rt)

    assert scope("auto", runtime).chat_ids() == {-200}
    assert scope("auto", runtime).label() == "auto (projects)"
    assert scope("auto", plain).chat_ids() == {-100}
    assert scope("main", runtime).chat_ids() == {-100}
    assert scope("all", runtime).chat_ids() == {-100, -200}
    assert scope("all", runtime).scope_for(-200, 7).topic_key == "-200:7"
    assert scope("all", runtime).scope_for(-300, 7).topic_key is None
    assert scope("all", runtime).scope_for(-200, None).topic_key is None
    off = TopicScope(enabled=False, scope="all", main_chat_id=-100, runtime=runtime)
    assert off.chat_ids() == frozenset() and off.scope_for(-100, 3).topic_key is None
