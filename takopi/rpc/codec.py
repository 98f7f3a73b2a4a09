"""msgpack codec with an explicit type registry.

Plain msgpack data (None, bool, int, float, str, bytes, list, dict) travels as is. Everything
else must be known:

* registered value types (:func:`register_type`; dataclasses are encoded by their init fields
  as a ``{field: value}`` map, so a peer with reordered or extra fields still decodes them),
  decoded back into **the real class**;
* ``tuple``, ``set``, ``frozenset``, ``pathlib`` paths, ``datetime`` (built in);
* live objects and callables, which travel **by reference** when an encoder is given a
  ``ref_exporter`` (a :class:`~takopi.rpc.peer.Peer` does that): classes marked with
  :func:`mark_by_reference`, :class:`Ref` wrappers, remote proxies and plain callables.

Anything else raises ``TypeError`` naming the type at encode time — never a silent ``str()``.

Decisions: ``MessageRef.raw`` is kept when it is plain msgpack data (dicts/lists/scalars) and
dropped (``None``) otherwise — it is transport-native and ``compare=False``, so equality of the
ref is unaffected. ``RenderedMessage.extra`` is encoded as ordinary data and comes back
unchanged. Subclasses of ``dict``/``list`` are sent as plain dicts/lists; other subclasses of
registered types (and enums) are refused.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import pathlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack

# Extension type codes (stable wire format: never renumber).
EXT_OBJECT = 1  # [name, payload] of a registered type
EXT_TUPLE = 2
EXT_SET = 3
EXT_FROZENSET = 4
EXT_PATH = 5
EXT_REF = 6  # a reference exported by the sender
EXT_BACKREF = 7  # a reference the *receiver* exported earlier, coming home

RefExporter = Callable[[Any], "RefDescriptor"]
RefImporter = Callable[[int, Any], Any]


@dataclass(frozen=True, slots=True)
class RefDescriptor:
    """What a ref exporter returns: ``back=True`` for the receiver's own object coming home."""

    back: bool
    payload: Any


class Ref:
    """Wrap ``obj`` to force it across by reference (see ``Peer.export``)."""

    __slots__ = ("attrs", "obj")

    def __init__(self, obj: object, attrs: dict[str, Any] | None = None) -> None:
        self.obj = obj
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Ref({self.obj!r})"


@dataclass(frozen=True, slots=True)
class _Entry:
    cls: type
    name: str
    to_wire: Callable[[Any], Any]
    from_wire: Callable[[Any], Any]


_lock = threading.RLock()
_by_type: dict[type, _Entry] = {}
_by_name: dict[str, _Entry] = {}
_by_reference: set[type] = set()
_proxy_types: tuple[type, ...] = ()

# Types defined in modules other engineers own (or that are heavy to import): registered on
# first use so that importing takopi.rpc stays cheap. Key: "module.QualName" -> wire name.
_LAZY: dict[str, tuple[str, str]] = {
    # wire name: (module, attribute)
    "RunRequest": ("takopi.commands", "RunRequest"),
    "RunResult": ("takopi.commands", "RunResult"),
    "CommandResult": ("takopi.commands", "CommandResult"),
    "ResolvedMessage": ("takopi.transport_runtime", "ResolvedMessage"),
    "IncomingMessage": ("takopi.runner_bridge", "IncomingMessage"),
    "EngineRunOptions": ("takopi.runners.run_options", "EngineRunOptions"),
    "SetupIssue": ("takopi.backends", "SetupIssue"),
    "SetupResult": ("takopi.transports", "SetupResult"),
}
_LAZY_BY_QUALNAME: dict[str, str] = {f"{m}.{a}": name for name, (m, a) in _LAZY.items()}


def _dataclass_codec(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    names = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    known = frozenset(names)

    def to_wire(obj: Any) -> dict[str, Any]:
        return {n: getattr(obj, n) for n in names}

    def from_wire(data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__qualname__}: expected a field map, got {type(data).__name__}")
        return cls(**{k: v for k, v in data.items() if k in known})

    return to_wire, from_wire


def register_type(
    cls: type,
    *,
    name: str,
    to_wire: Callable[[Any], Any] | None = None,
    from_wire: Callable[[Any], Any] | None = None,
) -> None:
    """Make ``cls`` encodable by value under the wire ``name``.

    Dataclasses need no functions (their init fields are encoded by name). Other classes must
    give ``to_wire(obj) -> encodable data`` and ``from_wire(data) -> obj``. Registering the same
    class again replaces its functions; a name already used by another class is an error.
    """
    if to_wire is None or from_wire is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(
                f"register_type({cls.__qualname__}): not a dataclass, give to_wire and from_wire"
            )
        default_to, default_from = _dataclass_codec(cls)
        to_wire = to_wire or default_to
        from_wire = from_wire or default_from
    with _lock:
        existing = _by_name.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(
                f"wire name {name!r} already registered for {existing.cls.__module__}."
                f"{existing.cls.__qualname__}"
            )
        entry = _Entry(cls, name, to_wire, from_wire)
        _by_type[cls] = entry
        _by_name[name] = entry


def mark_by_reference(cls: type) -> type:
    """Instances of ``cls`` (and subclasses) always travel by reference. Usable as decorator."""
    with _lock:
        _by_reference.add(cls)
    return cls


def register_proxy_type(cls: type) -> None:
    """Internal: the peer's proxy class, so proxies are re-exported / sent home, not copied."""
    global _proxy_types
    with _lock:
        if cls not in _proxy_types:
            _proxy_types = (*_proxy_types, cls)


def registered_names() -> list[str]:
    """Wire names of every registered type, including lazy ones (for tests and diagnostics)."""
    with _lock:
        return sorted(set(_by_name) | set(_LAZY))


def _lazy_entry_for_name(name: str) -> _Entry | None:
    target = _LAZY.get(name)
    if target is None:
        return None
    module, attr = target
    cls = getattr(importlib.import_module(module), attr)
    with _lock:
        if cls not in _by_type:
            register_type(cls, name=name)
        return _by_type[cls]


def _lazy_entry_for_type(cls: type) -> _Entry | None:
    name = _LAZY_BY_QUALNAME.get(f"{cls.__module__}.{cls.__qualname__}")
    if name is None:
        return None
    with _lock:
        if cls not in _by_type:
            register_type(cls, name=name)
        return _by_type[cls]


def _is_plain(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or type(value) in (bool, int, float, str, bytes):
        return True
    if type(value) in (list, tuple):
        return all(_is_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _pack(obj: Any, default: Callable[[Any], Any]) -> bytes:
    return msgpack.packb(obj, default=default, use_bin_type=True, strict_types=True)


def _default(exporter: RefExporter | None, obj: Any) -> Any:
    cls = type(obj)
    entry = _by_type.get(cls) or _lazy_entry_for_type(cls)
    dflt = partial(_default, exporter)
    if entry is not None:
        return msgpack.ExtType(EXT_OBJECT, _pack([entry.name, entry.to_wire(obj)], dflt))
    if cls is tuple:
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj), dflt))
    if cls is set or cls is frozenset:
        code = EXT_SET if cls is set else EXT_FROZENSET
        return msgpack.ExtType(code, _pack(list(obj), dflt))
    if isinstance(obj, pathlib.PurePath):
        return msgpack.ExtType(EXT_PATH, str(obj).encode())
    if isinstance(obj, (Ref, _proxy_types)) or _wants_reference(obj):
        if exporter is None:
            raise TypeError(
                f"cannot encode {_type_name(obj)} by value; live objects and callables travel "
                "by reference and need a Peer"
            )
        desc = exporter(obj)
        return msgpack.ExtType(EXT_BACKREF if desc.back else EXT_REF, _pack(desc.payload, dflt))
    if isinstance(obj, dict):  # OrderedDict, defaultdict, …: plain maps on the wire
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    raise TypeError(
        f"cannot encode value of type {_type_name(obj)}: register it with "
        "takopi.rpc.register_type() or mark_by_reference()"
    )


def _wants_reference(obj: Any) -> bool:
    if _by_reference and isinstance(obj, tuple(_by_reference)):
        return True
    return callable(obj) and not isinstance(obj, type)


def _ext_hook(importer: RefImporter | None, code: int, data: bytes) -> Any:
    hook = partial(_ext_hook, importer)
    if code == EXT_OBJECT:
        name, payload = _unpack(data, hook)
        entry = _by_name.get(name) or _lazy_entry_for_name(name)
        if entry is None:
            raise TypeError(f"unknown wire type {name!r}")
        return entry.from_wire(payload)
    if code == EXT_TUPLE:
        return tuple(_unpack(data, hook))
    if code == EXT_SET:
        return set(_unpack(data, hook))
    if code == EXT_FROZENSET:
        return frozenset(_unpack(data, hook))
    if code == EXT_PATH:
        return pathlib.Path(data.decode())
    if code in (EXT_REF, EXT_BACKREF):
        if importer is None:
            raise TypeError("received a reference outside of a Peer")
        return importer(code, _unpack(data, hook))
    raise TypeError(f"unknown msgpack extension code {code}")


def _unpack(data: bytes, hook: Callable[[int, bytes], Any]) -> Any:
    return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)


def encode(obj: Any, *, ref_exporter: RefExporter | None = None) -> bytes:
    """Encode ``obj`` to msgpack bytes. Raises ``TypeError`` naming any unencodable type."""
    return _pack(obj, partial(_default, ref_exporter))


def decode(data: bytes, *, ref_importer: RefImporter | None = None) -> Any:
    """Decode bytes made by :func:`encode`, rebuilding the real registered classes.

    Raises ``ValueError``/``TypeError`` (msgpack's own errors included) on malformed input.
    """
    return _unpack(data, partial(_ext_hook, ref_importer))


def _register_builtins() -> None:
    from takopi.context import RunContext
    from takopi.model import (
        Action,
        ActionEvent,
        CompletedEvent,
        ResumeToken,
        StartedEvent,
    )
    from takopi.projects import ProjectConfig, ProjectsConfig
    from takopi.transport import MessageRef, RenderedMessage, SendOptions

    for cls in (
        ResumeToken,
        Action,
        StartedEvent,
        ActionEvent,
        CompletedEvent,
        RenderedMessage,
        SendOptions,
        RunContext,
        ProjectConfig,
        ProjectsConfig,
    ):
        register_type(cls, name=cls.__name__)

    def ref_to_wire(ref: MessageRef) -> dict[str, Any]:
        return {
            "channel_id": ref.channel_id,
            "message_id": ref.message_id,
            "raw": ref.raw if _is_plain(ref.raw) else None,
            "thread_id": ref.thread_id,
            "sender_id": ref.sender_id,
        }

    def ref_from_wire(data: Any) -> MessageRef:
        return MessageRef(
            channel_id=data["channel_id"],
            message_id=data["message_id"],
            raw=data.get("raw"),
            thread_id=data.get("thread_id"),
            sender_id=data.get("sender_id"),
        )

    register_type(MessageRef, name="MessageRef", to_wire=ref_to_wire, from_wire=ref_from_wire)
    register_type(
        _dt.datetime,
        name="datetime",
        to_wire=lambda d: d.isoformat(),
        from_wire=_dt.datetime.fromisoformat,
    )
    register_type(
        _dt.date, name="date", to_wire=lambda d: d.isoformat(), from_wire=_dt.date.fromisoformat
    )


_register_builtins()

__all__ = [
    "Ref",
    "RefDescriptor",
    "decode",
    "encode",
    "mark_by_reference",
    "register_type",
    "registered_names",
]
