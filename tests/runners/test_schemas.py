"""The typed JSONL decoder and the four engine schemas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from takopi.schemas import SchemaError, claude, codex, decode, opencode, pi
from tests.runners.conftest import FIXTURES

SCHEMAS: dict[str, Any] = {"codex": codex, "claude": claude, "opencode": opencode, "pi": pi}


@dataclass(frozen=True)
class Inner:
    value: int
    label: str = "none"


@dataclass(frozen=True)
class Cat:
    type: Literal["cat"]
    lives: int = 9


@dataclass(frozen=True)
class Dog:
    type: Literal["dog", "puppy"]
    name: str
    session_id: str | None = field(default=None, metadata={"json": "sessionID"})


@dataclass(frozen=True)
class Other:
    type: str
    raw: dict[str, Any] = field(default_factory=dict, metadata={"raw": True})


Animal = Cat | Dog | Other


@dataclass(frozen=True)
class Zoo:
    animals: list[Cat | Dog] = field(default_factory=list)
    inner: Inner | None = None
    ratio: float = 0.0
    tags: dict[str, int] = field(default_factory=dict)
    flag: bool = False


def test_primitives_and_nested() -> None:
    zoo = decode(
        Zoo,
        {
            "animals": [{"type": "cat"}, {"type": "puppy", "name": "rex", "sessionID": "s1"}],
            "inner": {"value": 3},
            "ratio": 2,
            "tags": {"a": 1},
            "flag": True,
            "extra": "ignored",
        },
    )
    assert zoo == Zoo(
        animals=[Cat(type="cat"), Dog(type="puppy", name="rex", session_id="s1")],
        inner=Inner(value=3),
        ratio=2.0,
        tags={"a": 1},
        flag=True,
    )
    # explicit null for a defaulted, non-optional field falls back to the default
    assert decode(Zoo, {"animals": None, "ratio": None}) == Zoo()


def test_tagged_union_dispatch_and_fallback() -> None:
    assert decode(Animal, {"type": "dog", "name": "a"}) == Dog(type="dog", name="a")
    other = decode(Animal, {"type": "bird", "wings": 2})
    assert other == Other(type="bird", raw={"type": "bird", "wings": 2})
    with pytest.raises(SchemaError, match="unknown type 'bird'"):
        decode(Cat | Dog, {"type": "bird"})


@pytest.mark.parametrize(
    ("tp", "value", "where"),
    [
        (Inner, {"label": "x"}, r"\$\.value: missing required field"),
        (Inner, {"value": True}, r"\$\.value: expected an integer, got bool"),
        (Inner, {"value": 1.5}, r"\$\.value: expected an integer"),
        (Inner, {"value": 1, "label": 3}, r"\$\.label: expected a string, got int"),
        (Inner, [1], r"\$: expected an object for Inner, got list"),
        (Zoo, {"animals": [{"type": "cat", "lives": "x"}]}, r"\$\.animals\[0\]\.lives"),
        (Zoo, {"tags": {"a": "b"}}, r"\$\.tags\.a: expected an integer"),
        (Zoo, {"flag": 1}, r"\$\.flag: expected a boolean"),
        (Zoo, {"ratio": "1"}, r"\$\.ratio: expected a number"),
        (Cat, {"type": "dog"}, r"\$\.type: expected one of"),
    ],
)
def test_errors_name_the_path(tp: Any, value: Any, where: str) -> None:
    with pytest.raises(SchemaError, match=where):
        decode(tp, value)


def test_integral_float_is_an_int() -> None:
    assert decode(Inner, {"value": 4.0}) == Inner(value=4)


def test_unknown_event_and_item_types_do_not_fail() -> None:
    event = codex.decode_event({"type": "thread.forked", "x": 1})
    assert isinstance(event, codex.UnknownEvent) and event.raw["x"] == 1
    item = codex.decode_event(
        {"type": "item.completed", "item": {"id": "i", "type": "collab_tool_call"}}
    )
    assert isinstance(item, codex.ItemCompleted)
    assert isinstance(item.item, codex.UnknownItem)
    assert isinstance(claude.decode_event({"type": "rate_limit_event"}), claude.UnknownMessage)
    block = claude.decode_event(
        {"type": "assistant", "message": {"content": [{"type": "image", "source": {}}]}}
    )
    assert isinstance(block, claude.AssistantMessage)
    assert isinstance(block.message.content[0], claude.UnknownBlock)
    assert isinstance(opencode.decode_event({"type": "file.edited"}), opencode.UnknownEvent)
    assert isinstance(pi.decode_event({"type": "queue_update"}), pi.UnknownEvent)


def test_opencode_reasoning_decodes() -> None:
    event = opencode.decode_event(
        {"type": "reasoning", "sessionID": "ses_1", "part": {"id": "p", "text": "hmm"}}
    )
    assert event == opencode.ReasoningEvent(
        type="reasoning", session_id="ses_1", part=opencode.TextPart(id="p", text="hmm")
    )


def test_pi_message_text_and_thinking() -> None:
    event = pi.decode_event(
        {
            "type": "message_end",
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": " hm "},
                    {"type": "text", "text": "a"},
                    {"type": "toolCall", "id": "c", "name": "bash", "arguments": {}},
                    {"type": "text", "text": "b"},
                ],
                "stopReason": "toolUse",
            },
        }
    )
    assert isinstance(event, pi.MessageEnd)
    assert event.message.text() == "ab"
    assert event.message.thinking() == ["hm"]
    assert event.message.stop_reason == "toolUse"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.jsonl")), ids=lambda p: p.name)
def test_every_recorded_line_decodes_to_a_known_type(path: Any) -> None:
    """Real CLI output must never fall back to the ``Unknown…`` classes."""
    module = SCHEMAS[path.name.split("_", 1)[0]]
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        event = module.decode_event(json.loads(line))
        assert "Unknown" not in type(event).__name__, line[:200]
        item = getattr(event, "item", None)
        assert item is None or "Unknown" not in type(item).__name__, line[:200]
