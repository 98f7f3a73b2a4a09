"""A small typed decoder: JSON-like values -> plain dataclasses.

Each engine schema describes its CLI's JSONL events as dataclasses; :func:`decode` checks the
types and builds them. Supported annotations: ``Any``/``object``, ``str``, ``int``, ``float``,
``bool``, ``None``, ``Literal[...]``, unions (``X | None``, tagged unions of dataclasses),
``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses.

Conventions for schema dataclasses:

- extra keys in the input are ignored (CLIs add fields all the time);
- ``field(metadata={"json": "sessionID"})`` names the JSON key when it differs from the field;
- ``field(metadata={"raw": True})`` receives the whole input mapping (for fallbacks);
- an explicit ``null`` for a field that has a default but is not optional yields the default;
- a union of dataclasses whose ``type`` fields are ``Literal`` tags dispatches on ``"type"``;
  a member whose ``type`` is plain ``str`` is the fallback for unknown tags.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

TAG_FIELD = "type"


class SchemaError(ValueError):
    """The value does not match the schema; the message names the offending path."""


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    key: str
    hint: Any
    raw: bool
    has_default: bool
    default: Any
    default_factory: Any


@functools.cache
def _fields_of(cls: type) -> tuple[_FieldSpec, ...]:
    hints = get_type_hints(cls)
    specs: list[_FieldSpec] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        specs.append(
            _FieldSpec(
                name=f.name,
                key=f.metadata.get("json", f.name),
                hint=hints[f.name],
                raw=bool(f.metadata.get("raw", False)),
                has_default=(
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                ),
                default=f.default,
                default_factory=f.default_factory,
            )
        )
    return tuple(specs)


def _default_of(spec: _FieldSpec) -> Any:
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _allows_none(tp: Any) -> bool:
    if tp is Any or tp is object or tp is type(None):
        return True
    if _is_union(tp):
        return any(_allows_none(arg) for arg in get_args(tp))
    return False


@functools.cache
def _tag_table(members: tuple[Any, ...]) -> tuple[dict[str, type], type | None] | None:
    """Map tag -> class for a union of tagged dataclasses, plus the fallback (if any)."""
    table: dict[str, type] = {}
    fallback: type | None = None
    for member in members:
        if not (isinstance(member, type) and dataclasses.is_dataclass(member)):
            return None
        hint = get_type_hints(member).get(TAG_FIELD)
        if hint is None:
            return None
        if get_origin(hint) is Literal:
            for tag in get_args(hint):
                table[str(tag)] = member
        elif hint is str:
            fallback = member
        else:
            return None
    return table, fallback


def _decode_dataclass(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise SchemaError(f"{path}: expected an object for {cls.__name__}, got {_kind(value)}")
    kwargs: dict[str, Any] = {}
    for spec in _fields_of(cls):
        if spec.raw:
            kwargs[spec.name] = dict(value)
            continue
        sub = f"{path}.{spec.key}"
        if spec.key not in value:
            if spec.has_default:
                continue
            raise SchemaError(f"{sub}: missing required field")
        item = value[spec.key]
        if item is None and spec.has_default and not _allows_none(spec.hint):
            continue
        kwargs[spec.name] = decode(spec.hint, item, path=sub)
    return cls(**kwargs)


def _decode_union(tp: Any, value: Any, path: str) -> Any:
    members = get_args(tp)
    if value is None and type(None) in members:
        return None
    candidates = tuple(m for m in members if m is not type(None))
    tagged = _tag_table(candidates)
    if tagged is not None:
        table, fallback = tagged
        tag = value.get(TAG_FIELD) if isinstance(value, Mapping) else None
        target = table.get(tag) if isinstance(tag, str) else None
        if target is None:
            target = fallback
        if target is None:
            raise SchemaError(f"{path}: unknown {TAG_FIELD} {tag!r}")
        return _decode_dataclass(target, value, path)
    errors: list[str] = []
    for member in candidates:
        try:
            return decode(member, value, path=path)
        except SchemaError as exc:
            errors.append(str(exc))
    raise SchemaError(f"{path}: no union member matched ({'; '.join(errors)})")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def decode(tp: Any, value: Any, *, path: str = "$") -> Any:
    """Decode ``value`` (parsed JSON) as type ``tp``; raises :class:`SchemaError` on mismatch."""
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is not None:
            raise SchemaError(f"{path}: expected null, got {_kind(value)}")
        return None
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(f"{path}: expected a string, got {_kind(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{path}: expected a boolean, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SchemaError(f"{path}: expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"{path}: expected a number, got {_kind(value)}")
        return float(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, path)
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise SchemaError(f"{path}: expected one of {get_args(tp)!r}, got {value!r}")
        return value
    if _is_union(tp):
        return _decode_union(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise SchemaError(f"{path}: expected an array, got {_kind(value)}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [decode(item_tp, item, path=f"{path}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{path}: expected an object, got {_kind(value)}")
        args = get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): decode(val_tp, v, path=f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"unsupported schema annotation {tp!r}")  # a bug in a schema, not input


def decode_as(cls: type[T], value: Any) -> T:
    """Typed wrapper around :func:`decode` for a dataclass ``cls``."""
    return typing.cast(T, decode(cls, value))


__all__ = ["TAG_FIELD", "SchemaError", "decode", "decode_as"]
