"""Codec: every registered takopi.api value round-trips into its real class; unknown types fail
loudly at encode time."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import msgpack
import pytest

from takopi.commands import CommandResult, RunRequest, RunResult
from takopi.context import RunContext
from takopi.model import Action, ActionEvent, CompletedEvent, ResumeToken, StartedEvent
from takopi.projects import ProjectConfig, ProjectsConfig
from takopi.rpc import decode, encode, register_type, registered_names
from takopi.runner_bridge import IncomingMessage
from takopi.runners.run_options import EngineRunOptions
from takopi.transport import MessageRef, RenderedMessage, SendOptions
from takopi.transport_runtime import ResolvedMessage
from tests.support.processes import fresh_python

TOKEN = ResumeToken(engine="codex", value="019b-abc")
REF = MessageRef(channel_id=-100123, message_id=42, thread_id=7, sender_id=99)
CTX = RunContext(project="takopi", branch="feat/x")

VALUES: list[Any] = [
    TOKEN,
    Action(id="a1", kind="command", title="ls -la", detail={"exit_code": 0, "argv": ("ls",)}),
    StartedEvent(engine="codex", resume=TOKEN, title="Codex", meta={"model": "gpt"}),
    ActionEvent(
        engine="claude",
        action=Action(id="t", kind="tool", title="Read", detail={}),
        phase="completed",
        ok=False,
        message="boom",
        level="error",
    ),
    CompletedEvent(
        engine="pi", ok=True, answer="done ✅", resume=TOKEN, usage={"tokens": 12, "cost": 0.5}
    ),
    REF,
    RenderedMessage(
        text="<b>hi</b>",
        extra={"parse_mode": "HTML", "reply_markup": {"inline_keyboard": [[{"text": "x"}]]}},
    ),
    SendOptions(reply_to=REF, notify=False, replace=MessageRef(1, 2), thread_id="t-1"),
    CTX,
    RunRequest(prompt="fix it", engine="codex", context=CTX),
    RunResult(engine="codex", message=RenderedMessage(text="answer")),
    CommandResult(text="ok", notify=False, reply_to=REF),
    ResolvedMessage(
        prompt="go",
        resume_token=TOKEN,
        engine_override="claude",
        context=CTX,
        context_source="directives",
        directive_engine="claude",
    ),
    IncomingMessage(channel_id=5, message_id=6, text="hello", reply_to=REF, thread_id=3),
    EngineRunOptions(model="gpt-5", reasoning="high"),
    ProjectConfig(alias="Takopi", path=Path("/srv/takopi"), default_engine="codex", chat_id=-5),
    ProjectsConfig(
        projects={"takopi": ProjectConfig(alias="Takopi", path=Path("/srv/t"))},
        default_project="takopi",
        chat_map={-5: "takopi"},
    ),
    Path("/tmp/some dir/file.txt"),
    (1, "two", (3.0, None)),
    {1, 2, 3},
    frozenset({"a", "b"}),
    b"\x00\xffbytes",
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    {"nested": [TOKEN, {"deeper": (REF, CTX)}], 5: "int key"},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_gives_the_real_class(value: Any) -> None:
    back = decode(encode(value))
    assert type(back) is type(value)
    assert back == value


def test_every_lazy_and_builtin_name_is_listed() -> None:
    names = set(registered_names())
    for cls in (RunRequest, RunResult, CommandResult, ResolvedMessage, IncomingMessage):
        assert cls.__name__ in names
    assert {"ResumeToken", "MessageRef", "RenderedMessage", "ProjectConfig"} <= names


def test_nested_events_keep_identity_of_types() -> None:
    event = ActionEvent(
        engine="codex",
        action=Action(id="1", kind="file_change", title="edit", detail={"changes": [("a", 1)]}),
        phase="started",
    )
    back = decode(encode([event, event]))
    assert isinstance(back[0].action, Action)
    assert back[0].action.detail == {"changes": [("a", 1)]}
    assert isinstance(back[1].action.detail["changes"][0], tuple)


def test_message_ref_raw_plain_kept_other_dropped() -> None:
    plain = MessageRef(1, 2, raw={"update_id": 9, "message": {"text": "hi"}})
    assert decode(encode(plain)).raw == {"update_id": 9, "message": {"text": "hi"}}
    opaque = MessageRef(1, 2, raw=object(), thread_id=4, sender_id=8)
    back = decode(encode(opaque))
    assert back.raw is None
    assert (back.thread_id, back.sender_id) == (4, 8)
    assert back == opaque  # raw is compare=False


def test_rendered_extra_passes_through_unchanged() -> None:
    extra = {"parse_mode": "MarkdownV2", "activity_type": "thought", "ephemeral": True, "n": [1]}
    assert decode(encode(RenderedMessage(text="x", extra=extra))).extra == extra


class _Opaque:
    pass


class _Color(Enum):
    RED = 1


def test_unknown_types_fail_loudly_at_encode() -> None:
    with pytest.raises(TypeError, match=r"_Opaque"):
        encode({"x": [1, _Opaque()]})
    with pytest.raises(TypeError, match=r"_Color"):
        encode(_Color.RED)
    with pytest.raises(TypeError, match=r"by reference"):
        encode(lambda: None)  # callables only travel through a Peer


def test_dict_subclasses_become_plain_dicts() -> None:
    assert decode(encode(OrderedDict(a=1))) == {"a": 1}


@dataclass(frozen=True)
class _Point:
    x: int
    y: int = 0


def test_register_custom_dataclass_and_tolerate_extra_fields() -> None:
    register_type(_Point, name="tests.rpc._Point")
    assert decode(encode(_Point(3, 4))) == _Point(3, 4)
    # a peer whose class differs (reordered, extra, missing fields) still decodes by name
    tag = msgpack.ExtType(1, b"tests.rpc._Point\0z,x")
    assert decode(msgpack.packb([tag, 9, 1], use_bin_type=True)) == _Point(1, 0)
    tag = msgpack.ExtType(1, b"tests.rpc._Point\0y,x")
    assert decode(msgpack.packb([tag, 5, 2], use_bin_type=True)) == _Point(2, 5)


def test_register_rejects_name_clash_and_non_dataclass_without_functions() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_type(_Point, name="ResumeToken")
    with pytest.raises(TypeError, match="not a dataclass"):
        register_type(_Opaque, name="tests.rpc._Opaque")


def test_unknown_wire_type_fails_decode() -> None:
    with pytest.raises(TypeError, match="NoSuchType"):
        decode(msgpack.packb([msgpack.ExtType(1, b"NoSuchType\0a")], use_bin_type=True))
    with pytest.raises(TypeError, match="extension code 99"):
        decode(msgpack.packb(msgpack.ExtType(99, b""), use_bin_type=True))


def test_tuple_and_frozenset_as_map_keys() -> None:
    value = {(1, "a"): "tuple key", frozenset({2}): "set key"}
    assert decode(encode(value)) == value


def test_importing_rpc_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, takopi.rpc; "
        "heavy = [m for m in ('takopi.commands', 'takopi.runner_bridge', "
        "'takopi.transport_runtime', 'takopi.router', 'takopi.settings') if m in sys.modules]; "
        "print(heavy)"
    )
    assert fresh_python(code) == ["[]"]


@dataclass(frozen=True, slots=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_decoded_events_are_real_instances_with_defaults_and_equal() -> None:
    ev = ActionEvent(
        engine="codex",
        action=Action(id="a", kind="command", title="ls", detail={"x": [1, 2]}),
        phase="completed",
        ok=True,
    )
    got = decode(encode([ev, ev]))
    assert got == [ev, ev]
    assert type(got[0]) is ActionEvent and type(got[0].action) is Action
    assert got[0].type == "action" and got[0].action.detail == {"x": [1, 2]}
    with pytest.raises(AttributeError):
        got[0].ok = False  # type: ignore[misc]


def test_post_init_still_runs_on_decode() -> None:
    register_type(_Checked, name="test.Checked")
    assert decode(encode(_Checked(3))) == _Checked(3)
    frame = encode(_Checked(3)).replace(b"\x03", b"\xff")  # positive fixint 3 -> -1
    with pytest.raises(ValueError, match="negative"):
        decode(frame)


@pytest.mark.parametrize(
    "data",
    [
        # minimal example found by tests/fuzz/test_rpc_frames.py: [tag("date")] with its value
        # missing made the custom codec's from_wire raise IndexError
        b"\x91\xd6\x01date",
        msgpack.packb([msgpack.ExtType(1, b"datetime")]),
        msgpack.packb([msgpack.ExtType(1, b"MessageRef")]),
    ],
)
def test_tag_without_its_value_is_a_type_error(data: bytes) -> None:
    with pytest.raises(TypeError, match="malformed wire value"):
        decode(data)
