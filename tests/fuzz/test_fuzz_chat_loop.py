"""Property-based fuzzing of the real Telegram chat loop (``run_telegram`` against the fake
Bot API, with the fake ``codex`` CLI on PATH), driven by hypothesis-generated sequences of
updates: prompts (with directives, replies to random messages, odd unicode), commands with
random arguments (``/agent /model /reasoning /trigger /ctx /topic /file /new /cancel`` and
plugin-like ``/words``), malformed updates pushed raw, re-deliveries of a prompt under a new
update id, media (documents, photos, voice notes, albums), button presses with random data,
and messages in chats that are not configured.

Properties, for every generated sequence:

- the loop never dies: a prompt sent after the sequence still gets its answer;
- every accepted prompt gets exactly one terminal reply (``done``/``error``/``cancelled``);
- no reply, edit or callback answer shows a traceback or an exception's text, and no
  update or background task
  fails with an exception (the loop's ``update.failed``/``telegram.task_failed`` logs);
- nothing is sent to chats that are not accepted;
- uploads never land outside the project directory.

One fake server and one running loop serve the whole module; between examples the chat's
state files are removed so every sequence starts from the same settings.

When the loop gets wedged, every later example fails and shrinking ends on an innocent one:
``FUZZ_DEBUG=<file>`` appends each sequence to ``<file>`` with a timestamp (the culprit is the
one before the first gap), and ``FUZZ_ANSWER_TIMEOUT`` shortens the wait for the last answer.
"""

from __future__ import annotations

import importlib
import itertools
import os
import pkgutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import takopi.telegram
import takopi.utils.json_state
from takopi.projects import ProjectConfig, ProjectsConfig
from tests.fakes.bot_api import BotApiServer, FakeMessage
from tests.fuzz.conftest import scaled
from tests.fuzz.strategies import odd_text, updates
from tests.support.git_repos import make_repo
from tests.telegram.conftest import Harness, RecordingLogger, install_fake_codex, make_runtime

LOOP_EXAMPLES = scaled(0.5)
# about a second per example and environment, plus start-up: bounded, and scaled with the
# profile (the deep one runs 1000 examples per environment)
pytestmark = pytest.mark.timeout(60 + 6 * LOOP_EXAMPLES)

CHAT = 1001  # the configured private chat (user 1001)
FORUM = -100777  # the configured forum (topics enabled), where ADMIN writes
ADMIN = 501
GROUP = -3003  # a group nobody configured
STRANGER = 777  # a private chat nobody configured
BOT = "takopi_test_bot"
TERMINAL = ("done", "error", "cancelled", "this topic isn't bound to a project yet")
# what only an exception's own text carries: never meant for a user
INTERNALS = ("Traceback", "codec can't", "surrogates not allowed", "object has no attribute")
FAILURE_EVENTS = {"update.failed", "telegram.task_failed", "telegram.prompt.failed"}
ANSWER_TIMEOUT_S = float(os.environ.get("FUZZ_ANSWER_TIMEOUT", 45))
_serial = itertools.count(1)


@dataclass
class LoopEnv:
    server: BotApiServer
    harness: Harness
    state_dir: Path
    log: RecordingLogger
    chat: int
    user: int
    forum: bool
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Raw messages of this example's prompts (for :class:`Redeliver`)."""


@pytest.fixture(scope="module", params=["private", "forum"])
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopEnv]:
    """The loop serving a private chat, or a forum with topics enabled (``scope = "main"``)."""
    forum = request.param == "forum"
    tmp = tmp_path_factory.mktemp("chat-loop")
    project = make_repo(tmp / "api", readme="README.md")
    server = BotApiServer(max_poll_timeout=0.5)
    server.start()
    for chat in (CHAT, GROUP, STRANGER):
        server.add_chat(chat)
    server.add_chat(FORUM, is_forum=True)
    server.set_member(FORUM, server.bot_id, "administrator", can_manage_topics=True)
    server.set_member(FORUM, ADMIN, "administrator")
    chat, user = (FORUM, ADMIN) if forum else (CHAT, CHAT)
    log = RecordingLogger()
    with pytest.MonkeyPatch.context() as mp:
        install_fake_codex(tmp, mp)
        for info in pkgutil.iter_modules(takopi.telegram.__path__):
            module = importlib.import_module(f"takopi.telegram.{info.name}")
            if hasattr(module, "log"):
                mp.setattr(module, "log", log)
        mp.setattr(takopi.utils.json_state, "log", log)
        runtime = make_runtime(
            tmp / "takopi.toml",
            ProjectsConfig(projects={"api": ProjectConfig(alias="api", path=project)}),
        )
        harness = Harness(
            server,
            tmp,
            runtime=runtime,
            session_mode="chat",
            files={"enabled": True},
            media_group_debounce_s=0.2,
            chat_id=chat,
            **({"topics": {"enabled": True, "scope": "main"}} if forum else {}),
        )
        harness.start()
        try:
            yield LoopEnv(
                server=server,
                harness=harness,
                state_dir=tmp,
                log=log,
                chat=chat,
                user=user,
                forum=forum,
            )
        finally:
            harness.stop()
            server.stop()


# -- actions ---------------------------------------------------------------------------------


@dataclass
class Prompt:
    """An accepted prompt (mentions the bot, so ``/trigger mentions`` lets it through)."""

    directive: str
    text: str
    reply: int | None
    thread: int | None = None


@dataclass
class Command:
    name: str
    args: str
    reply: int | None
    thread: int | None = None


@dataclass
class Raw:
    """An update pushed as is; ``in_chat`` moves it into the configured chat."""

    update: Any
    in_chat: bool


@dataclass
class Button:
    data: str
    target: int


@dataclass
class Media:
    """A document, photo, voice note or album (two documents) posted in the chat."""

    kind: str
    caption: str | None
    file_name: str | None
    size: int | None
    thread: int | None = None


@dataclass
class Redeliver:
    """Telegram delivers one of this example's prompts again, under a new update id: it
    must not run twice."""

    index: int


@dataclass
class Elsewhere:
    """A message in a chat that is not accepted."""

    chat: int
    text: str
    user: int | None


# reply targets: an index into the chat's latest messages (resolved when sent), or an id
# that may not exist at all
replies = st.one_of(st.none(), st.integers(-8, -1), st.integers(1, 10**6))
# forum topics (the fake server opens a topic for any thread id it sees); ignored in the
# private chat
threads = st.one_of(st.none(), st.integers(1, 4), st.integers(1, 10**6))
_args_words = st.sampled_from(
    [
        "",
        "set",
        "clear",
        "set codex",
        "set claude",
        "set o3",
        "set high",
        "set xhigh",
        "set mentions",
        "set all",
        "set api",
        "set api @feat",
        "set nope",
        "get README.md",
        "get .",
        "get ../etc/passwd",
        "put x.txt",
        "codex",
        "codex o3",
        '"unbalanced',
        "api @b",
    ]
)
commands = st.builds(
    Command,
    name=st.sampled_from(
        [
            "agent",
            "model",
            "reasoning",
            "trigger",
            "ctx",
            "topic",
            "file",
            "new",
            "cancel",
            "codex",
            "api",
            "help",
            "status",
            "x" * 40,
            "Agent@" + BOT,
            "model@other_bot",
        ]
    ),
    args=st.one_of(_args_words, odd_text(max_size=20)),
    reply=replies,
    thread=threads,
)
prompts = st.builds(
    Prompt,
    directive=st.sampled_from(["", "/codex ", "/api ", "@feat ", "/codex /codex ", "/api @x "]),
    text=odd_text(max_size=30),
    reply=replies,
    thread=threads,
)


def _raw(update: Any, in_chat: bool) -> Raw:
    return Raw(update=update, in_chat=in_chat)


raws = st.builds(_raw, updates(), st.booleans())
buttons = st.builds(
    Button,
    data=st.one_of(st.just("takopi:cancel"), odd_text(max_size=20)),
    target=st.integers(-8, 10**6),
)
elsewhere = st.builds(
    Elsewhere,
    chat=st.sampled_from([GROUP, STRANGER]),
    text=st.one_of(st.just("/agent set codex"), st.just("hello"), odd_text(max_size=20)),
    user=st.one_of(st.none(), st.just(CHAT)),
)
media = st.builds(
    Media,
    kind=st.sampled_from(["document", "photo", "voice", "album", "video"]),
    caption=st.one_of(
        st.none(),
        st.sampled_from(["/file put", "/file put sub/", "/file put ../up.txt", "/api", "/file"]),
        odd_text(max_size=20),
    ),
    file_name=st.one_of(
        st.none(),
        st.sampled_from(
            ["f.txt", "../escape.txt", "a/b/c.txt", ".env", "x" * 300 + ".txt", "ü ñ.md", ""]
        ),
        odd_text(max_size=12),
    ),
    size=st.one_of(st.none(), st.just(30 * 1024 * 1024)),
    thread=threads,
)
actions = st.lists(
    st.one_of(
        prompts, commands, raws, buttons, elsewhere, media, st.builds(Redeliver, st.integers(0, 5))
    ),
    min_size=1,
    max_size=6,
)


# -- driving the loop ------------------------------------------------------------------------


def _target(env: LoopEnv, reply: int | None) -> int | None:
    if reply is None or reply > 0:
        return reply
    recent = env.server.messages(env.chat)[reply:]
    return recent[0].message_id if recent else None


def _thread(env: LoopEnv, thread: int | None) -> int | None:
    return thread if env.forum else None


def _guard(text: str, directive: str = "") -> str:
    """A prompt that mentions the bot and never starts with the fake codex's keywords
    (``wait``/``sleep``/``fail``)."""
    return f"@{BOT} {directive}q{next(_serial)} {text}"


def _into_chat(env: LoopEnv, update: Any) -> Any:
    """Point a pushed message at the configured chat and user, with guarded text."""
    if not isinstance(update, dict):
        return update
    for key in ("message", "callback_query"):
        body = update.get(key)
        if key == "callback_query" and isinstance(body, dict):
            body = body.get("message")
        if not isinstance(body, dict):
            continue
        if isinstance(body.get("chat"), dict):
            kind = "supergroup" if env.forum else "private"
            body["chat"] = {**body["chat"], "id": env.chat, "type": kind, "is_forum": env.forum}
        if isinstance(body.get("from"), dict):
            body["from"] = {**body["from"], "id": env.user, "is_bot": False}
        for name in ("text", "caption"):
            if isinstance(body.get(name), str):
                body[name] = _guard(body[name])
    return update


def _perform(env: LoopEnv, action: Any) -> int | None:
    """Do ``action``; returns the message id of an accepted prompt."""
    server = env.server
    if isinstance(action, Prompt):
        msg = server.send_user_message(
            env.chat,
            _guard(action.text, action.directive),
            user_id=env.user,
            reply_to=_target(env, action.reply),
            thread_id=_thread(env, action.thread),
        )
        env.sent.append(msg)
        return int(msg["message_id"])
    if isinstance(action, Command):
        server.send_user_message(
            env.chat,
            f"/{action.name} {action.args}",
            user_id=env.user,
            reply_to=_target(env, action.reply),
            thread_id=_thread(env, action.thread),
        )
    elif isinstance(action, Raw):
        update = _into_chat(env, action.update) if action.in_chat else action.update
        update = dict(update) if isinstance(update, dict) else {"junk": update}
        update_id = update.get("update_id")
        if isinstance(update_id, int) and not isinstance(update_id, bool) and update_id >= 0:
            # Telegram's ids only grow: an id beyond the server's next one would move the
            # poll offset past every later update (the fake server drops them, as Telegram
            # would); the server numbers it instead. Negative and non-integer ids stay.
            del update["update_id"]
        server.push_update(update)
    elif isinstance(action, Button):
        target = _target(env, action.target) or action.target
        server.press_button(env.chat, target, action.data, user_id=env.user)
    elif isinstance(action, Media):
        caption = _guard(action.caption) if action.caption is not None else None
        if action.caption is not None and action.caption.startswith("/"):
            caption = action.caption  # a command caption, as typed
        content = b"fuzz " * 8
        where: dict[str, Any] = {"user_id": env.user, "thread_id": _thread(env, action.thread)}
        if action.kind == "photo":
            server.send_user_photo(env.chat, content, caption=caption, **where)
        elif action.kind == "voice":
            server.send_user_voice(env.chat, content, caption=caption, size=action.size, **where)
        else:
            group = f"album{next(_serial)}" if action.kind == "album" else None
            for i in range(2 if group else 1):
                server.send_user_document(
                    env.chat,
                    content,
                    file_name=action.file_name,
                    caption=caption if i == 0 else None,
                    media_group_id=group,
                    kind="video" if action.kind == "video" else "document",
                    size=action.size,
                    **where,
                )
    elif isinstance(action, Redeliver):
        if env.sent:
            server.push_update({"message": env.sent[action.index % len(env.sent)]})
    elif isinstance(action, Elsewhere):
        server.send_user_message(action.chat, action.text, user_id=action.user)
    return None


def _terminal_replies(env: LoopEnv, message_id: int) -> list[FakeMessage]:
    return [
        m
        for m in env.server.bot_messages(env.chat)
        if m.reply_to_message_id == message_id and m.text.startswith(TERMINAL)
    ]


def _reset(env: LoopEnv) -> None:
    """Every sequence starts from the default settings and no stored sessions."""
    for path in env.state_dir.glob("telegram_*_state.json*"):
        path.unlink(missing_ok=True)


# one running loop (a module fixture) serves every example: starting one costs seconds
@settings(max_examples=LOOP_EXAMPLES)
@given(sequence=actions)
# found by this test: a lone surrogate in a prompt made the run fail with
# "error · codex ... 'utf-8' codec can't encode character '\ud800' ..."
@example(sequence=[Prompt(directive="", text="a\ud800b", reply=None)])
def test_chat_loop_survives_any_update_sequence(env: LoopEnv, sequence: list[Any]) -> None:
    server = env.server
    _reset(env)
    env.sent.clear()
    first_log = len(env.log.records)
    first_call = len(server.requests)
    first_answer = len(server.callback_answers)
    if os.environ.get("FUZZ_DEBUG"):
        with open(os.environ["FUZZ_DEBUG"], "a") as f:
            f.write(f"{time.time():.1f} {sequence!r}\n")
    accepted = [mid for action in sequence if (mid := _perform(env, action)) is not None]
    final = server.send_user_message(env.chat, _guard("are you there?"), user_id=env.user)
    accepted.append(int(final["message_id"]))
    # the loop is alive and answers the last prompt ...
    server.wait_for(lambda: _terminal_replies(env, accepted[-1]), timeout=ANSWER_TIMEOUT_S)
    # ... and every accepted prompt gets exactly one terminal reply
    for message_id in accepted:
        server.wait_for(lambda mid=message_id: _terminal_replies(env, mid), timeout=30)
    time.sleep(0.3)  # a duplicate would come right after
    for message_id in accepted:
        replies = _terminal_replies(env, message_id)
        assert len(replies) == 1, [r.text for r in replies]
    # no traceback reaches a user, no update or task failed
    with server._cond:
        calls = server.requests[first_call:]
        answers = server.callback_answers[first_answer:]
    shown = [str(params.get(k) or "") for _m, params in calls for k in ("text", "caption")]
    shown += [str(answer.get("text") or "") for answer in answers]
    for text in shown:
        assert not any(marker in text for marker in INTERNALS), text
    failures = [
        (level, event, fields)
        for level, event, fields in env.log.records[first_log:]
        if level == "exception" or event in FAILURE_EVENTS
    ]
    assert not failures, failures
    # nothing is sent to chats that are not accepted
    sent_to = {
        str(params.get("chat_id"))
        for method, params in calls
        if method.startswith(("send", "edit", "delete", "forward", "copy", "pin"))
    }
    assert sent_to <= {str(env.chat)}, sent_to
    # uploads land inside the project, never next to it
    expected = {"bin", "codex-state", "api", "takopi.toml"}
    strays = [
        p.name
        for p in env.state_dir.iterdir()
        if p.name not in expected and not p.name.startswith("telegram_")
    ]
    assert not strays, strays
