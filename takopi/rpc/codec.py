"""msgpack codec with an explicit type registry.

Plain msgpack data (None, bool, int, float, str, bytes, list, dict) travels as is. Everything
else must be known:

* registered value types (:func:`register_type`), decoded back into **the real class**;
* ``tuple``, ``set``, ``frozenset``, ``pathlib`` paths, ``datetime``/``date`` (built in);
* live objects and callables, which travel **by reference** when an encoder is given a
  ``ref_exporter`` (a :class:`~takopi.rpc.peer.Peer` does that): classes marked with
  :func:`mark_by_reference`, :class:`Ref` wrappers, remote proxies and plain callables.

Anything else raises ``TypeError`` naming the type at encode time — never a silent ``str()``.

Wire format: a non-plain value is an array whose first element is a *tag* (a msgpack
extension holding the type name — and, for dataclasses, the field names), followed by the
values, packed inline (no nested packing, so ≥100k events/s stay possible). A dataclass is
``[tag("Name\0f1,f2,…"), v1, v2, …]``: the receiver maps values by the sender's field names,
so a peer whose class has reordered, extra or missing fields still decodes (unknown fields are
dropped, missing ones take their defaults). Tags are cached per distinct payload.

Decisions: ``MessageRef.raw`` is kept when it is plain msgpack data (dicts/lists/scalars) and
dropped (``None``) otherwise — it is transport-native and ``compare=False``, so equality of the
ref is unaffected. ``RenderedMessage.extra`` is encoded as ordinary data and comes back
unchanged. Subclasses of ``dict``/``list`` are sent as plain dicts/lists; other subclasses of
registered types, enums, and unregistered classes are refused.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import inspect
import operator
import pathlib
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgpack

# Extension type codes (stable wire format: never renumber).
EXT_TAG = 1  # type tag heading an array: b"Name" (custom codec) or b"Name\0f1,f2" (dataclass)
EXT_TUPLE = 2  # empty-payload marker heading an array
EXT_SET = 3
EXT_FROZENSET = 4
EXT_PATH = 5  # leaf: utf-8 path
EXT_REF = 6  # leaf: a reference exported by the sender (nested msgpack payload)
EXT_BACKREF = 7  # leaf: a reference the *receiver* exported earlier, coming home

RefExporter = Callable[[Any], "RefDescriptor"]
RefImporter = Callable[[int, Any], Any]

_MAX_TAGS = 4096  # distinct tag payloads cached (bounded: tags come from the network)


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
    tag: msgpack.ExtType
    fields: tuple[str, ...] | None  # dataclass init fields (None: custom to_wire/from_wire)
    values: Callable[[Any], tuple[Any, ...]] | None
    to_wire: Callable[[Any], Any] | None
    from_wire: Callable[[Any], Any] | None


class _Tag:
    """Decoded tag: builds the value from the array it heads.

    ``positional``: the value is ``ctor(*array[1:])`` (called inline, the hot path);
    otherwise ``build(array)``.
    """

    __slots__ = ("build", "ctor", "positional")

    def __init__(
        self,
        build: Callable[[list[Any]], Any] | None = None,
        *,
        ctor: Callable[..., Any] | None = None,
    ) -> None:
        self.positional = ctor is not None
        self.ctor: Callable[..., Any] = ctor or _unreachable
        self.build: Callable[[list[Any]], Any] = build or _unreachable


def _unreachable(*_args: Any) -> Any:
    raise AssertionError("tag builder misconfigured")


_TUPLE_TAG = _Tag(ctor=lambda *a: a)
_SET_TAG = _Tag(lambda a: set(a[1:]))
_FROZENSET_TAG = _Tag(lambda a: frozenset(a[1:]))
_TUPLE_EXT = msgpack.ExtType(EXT_TUPLE, b"")
_SET_EXT = msgpack.ExtType(EXT_SET, b"")
_FROZENSET_EXT = msgpack.ExtType(EXT_FROZENSET, b"")

_lock = threading.RLock()
_by_type: dict[type, _Entry] = {}
_by_name: dict[str, _Entry] = {}
_tags: dict[bytes, _Tag] = {}
_by_reference: set[type] = set()
_proxy_types: tuple[type, ...] = ()

# Types defined in modules other engineers own (or that are heavy to import): registered on
# first use so that importing takopi.rpc stays cheap.
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
    if "\0" in name or not name:
        raise ValueError(f"invalid wire name {name!r}")
    fields: tuple[str, ...] | None = None
    values: Callable[[Any], tuple[Any, ...]] | None = None
    if to_wire is None or from_wire is None:
        if to_wire is not None or from_wire is not None:
            raise TypeError(f"register_type({cls.__qualname__}): give both to_wire and from_wire")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(
                f"register_type({cls.__qualname__}): not a dataclass, give to_wire and from_wire"
            )
        fields = tuple(f.name for f in dataclasses.fields(cls) if f.init)
        if len(fields) == 1:
            only = fields[0]
            values = lambda obj: (getattr(obj, only),)  # noqa: E731
        elif fields:
            values = operator.attrgetter(*fields)
        else:
            values = lambda obj: ()  # noqa: E731
        payload = name.encode() + b"\0" + ",".join(fields).encode()
    else:
        payload = name.encode()
    entry = _Entry(cls, name, msgpack.ExtType(EXT_TAG, payload), fields, values, to_wire, from_wire)
    with _lock:
        existing = _by_name.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(
                f"wire name {name!r} already registered for {existing.cls.__module__}."
                f"{existing.cls.__qualname__}"
            )
        _by_type[cls] = entry
        _by_name[name] = entry
        _tags.clear()  # builders captured the old entry


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


def _entry_for_name(name: str) -> _Entry | None:
    entry = _by_name.get(name)
    if entry is not None:
        return entry
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


def _default(exporter: RefExporter | None, obj: Any) -> Any:
    cls = type(obj)
    entry = _by_type.get(cls) or _lazy_entry_for_type(cls)
    if entry is not None:
        if entry.values is not None:
            return [entry.tag, *entry.values(obj)]
        assert entry.to_wire is not None
        return [entry.tag, entry.to_wire(obj)]
    if cls is tuple:
        return [_TUPLE_EXT, *obj]
    if cls is set:
        return [_SET_EXT, *obj]
    if cls is frozenset:
        return [_FROZENSET_EXT, *obj]
    if isinstance(obj, pathlib.PurePath):
        return msgpack.ExtType(EXT_PATH, str(obj).encode())
    if isinstance(obj, (Ref, _proxy_types)) or _wants_reference(obj):
        if exporter is None:
            raise TypeError(
                f"cannot encode {_type_name(obj)} by value; live objects and callables travel "
                "by reference and need a Peer"
            )
        desc = exporter(obj)
        payload = msgpack.packb(
            desc.payload, default=partial(_default, exporter), use_bin_type=True, strict_types=True
        )
        return msgpack.ExtType(EXT_BACKREF if desc.back else EXT_REF, payload)
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


def _make_tag(payload: bytes) -> _Tag:
    name_b, sep, fields_b = payload.partition(b"\0")
    name = name_b.decode()
    entry = _entry_for_name(name)
    if entry is None:
        raise TypeError(f"unknown wire type {name!r}")
    cls = entry.cls
    if not sep:
        if entry.from_wire is None:
            raise TypeError(f"wire type {name!r}: expected field names")
        from_wire = entry.from_wire
        return _Tag(lambda a: from_wire(a[1]))
    if entry.fields is None:
        raise TypeError(f"wire type {name!r} has a custom codec, got field names")
    theirs = tuple(fields_b.decode().split(",")) if fields_b else ()
    if theirs == entry.fields:
        return _Tag(ctor=_fast_ctor(cls) or cls)
    known = frozenset(entry.fields)
    pairs = [(i + 1, f) for i, f in enumerate(theirs) if f in known]
    return _Tag(lambda a: cls(**{f: a[i] for i, f in pairs if i < len(a)}))


def _fast_ctor(cls: type) -> Callable[..., Any] | None:
    """A positional constructor for a frozen slotted dataclass that fills the slots directly
    (the generated ``__init__`` goes through ``object.__setattr__`` per field: about half of
    an event's decode time). None when that would not be equivalent: ``__post_init__``,
    ``InitVar``s, fields without slots, or non-init fields without a plain default."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    init_params = list(inspect.signature(cls.__init__).parameters)[1:]
    if init_params != [f.name for f in dataclasses.fields(cls) if f.init]:
        return None  # InitVar pseudo-fields
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    args: list[str] = []
    lines: list[str] = []
    for i, f in enumerate(dataclasses.fields(cls)):
        setter = getattr(cls, f.name, None)
        if type(setter) is not types.MemberDescriptorType or f.kw_only:
            return None
        ns[f"_s{i}"] = setter.__set__
        if f.init:
            args.append(f"a{i}")
            lines.append(f"    _s{i}(o, a{i})")
        elif f.default is not dataclasses.MISSING:
            ns[f"_d{i}"] = f.default
            lines.append(f"    _s{i}(o, _d{i})")
        else:
            return None
    src = "\n".join(
        [f"def build({', '.join(args)}):", "    o = _new(_cls)", *lines, "    return o"]
    )
    exec(src, ns)  # generated from the class's own field list
    build: Callable[..., Any] = ns["build"]
    return build


def _list_hook(items: list[Any]) -> Any:
    if items and type(items[0]) is _Tag:
        tag = items[0]
        try:
            if tag.positional:
                return tag.ctor(*items[1:])
            return tag.build(items)
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            # e.g. a custom-codec tag with its value missing (IndexError): bad input, and
            # decode() promises ValueError/TypeError for that.
            raise TypeError(f"malformed wire value: {type(exc).__name__}: {exc}") from None
    return items


def _make_ext_hook(importer: RefImporter | None) -> Callable[[int, bytes], Any]:
    tags = _tags

    def ext_hook(code: int, data: bytes) -> Any:
        if code == EXT_TAG:
            tag = tags.get(data)
            if tag is None:
                tag = _make_tag(data)
                if len(tags) < _MAX_TAGS:
                    tags[data] = tag
            return tag
        if code == EXT_TUPLE:
            return _TUPLE_TAG
        if code == EXT_SET:
            return _SET_TAG
        if code == EXT_FROZENSET:
            return _FROZENSET_TAG
        if code == EXT_PATH:
            return pathlib.Path(data.decode())
        if code in (EXT_REF, EXT_BACKREF):
            if importer is None:
                raise TypeError("received a reference outside of a Peer")
            payload = msgpack.unpackb(
                data, ext_hook=ext_hook, list_hook=_list_hook, raw=False, strict_map_key=False
            )
            return importer(code, payload)
        raise TypeError(f"unknown msgpack extension code {code}")

    return ext_hook


_plain_default = partial(_default, None)
_plain_ext_hook = _make_ext_hook(None)


class Codec:
    """Encoder/decoder bound to one ref exporter/importer pair (what a Peer uses)."""

    __slots__ = ("_default", "_ext_hook")

    def __init__(self, ref_exporter: RefExporter | None, ref_importer: RefImporter | None) -> None:
        self._default = partial(_default, ref_exporter) if ref_exporter else _plain_default
        self._ext_hook = _make_ext_hook(ref_importer)

    def encode(self, obj: Any) -> bytes:
        """Like :func:`encode` with this codec's exporter."""
        data: bytes = msgpack.packb(
            obj, default=self._default, use_bin_type=True, strict_types=True
        )
        return data

    def decode(self, data: bytes) -> Any:
        """Like :func:`decode` with this codec's importer."""
        return msgpack.unpackb(
            data, ext_hook=self._ext_hook, list_hook=_list_hook, raw=False, strict_map_key=False
        )


def encode(obj: Any, *, ref_exporter: RefExporter | None = None) -> bytes:
    """Encode ``obj`` to msgpack bytes. Raises ``TypeError`` naming any unencodable type."""
    default = _plain_default if ref_exporter is None else partial(_default, ref_exporter)
    data: bytes = msgpack.packb(obj, default=default, use_bin_type=True, strict_types=True)
    return data


def decode(data: bytes, *, ref_importer: RefImporter | None = None) -> Any:
    """Decode bytes made by :func:`encode`, rebuilding the real registered classes.

    Raises ``ValueError``/``TypeError`` (msgpack's own errors included) on malformed input.
    """
    hook = _plain_ext_hook if ref_importer is None else _make_ext_hook(ref_importer)
    return msgpack.unpackb(
        data, ext_hook=hook, list_hook=_list_hook, raw=False, strict_map_key=False
    )


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
    from takopi.protocol import WIRE_TYPES
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
        *WIRE_TYPES,
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
