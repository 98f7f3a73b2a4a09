"""References: live objects that cross a connection as proxies.

The exporting side keeps each object in a table with a count of how many times it was sent;
the receiving side builds one :class:`~takopi.rpc.proxy.RemoteProxy` per reference and sends
RELEASE (batched) once its proxies are garbage-collected. A proxy sent back home decodes to
the original object.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from takopi.rpc import envelope as env
from takopi.rpc.codec import EXT_BACKREF, Ref, RefDescriptor
from takopi.rpc.link import Link, running_loop
from takopi.rpc.proxy import RefCaller, RemoteProxy


@dataclass(slots=True)
class Export:
    """A local object the other side holds references to."""

    obj: Any
    home: asyncio.AbstractEventLoop | None
    """The loop its methods run on (None: the peer loop)."""
    methods: list[str]
    count: int = 0


_method_cache: dict[type, list[str]] = {}


def public_methods(obj: Any) -> list[str]:
    """The methods a reference to ``obj`` exposes (public, existing at export time)."""
    if isinstance(obj, RemoteProxy):
        return sorted(obj._rpc_methods)
    cls = type(obj)
    names = _method_cache.get(cls)
    if names is None:
        names = [
            n
            for n in dir(cls)
            if not n.startswith("_") and callable(inspect.getattr_static(cls, n, None))
        ]
        _method_cache[cls] = names
    extra = [
        n
        for n, v in getattr(obj, "__dict__", {}).items()
        if not n.startswith("_") and callable(v) and n not in names
    ]
    methods = names + extra
    if callable(obj):
        methods = [*methods, "__call__"]
    return methods


class Refs:
    """Exported objects and imported proxies of one connection."""

    def __init__(self, link: Link, caller: RefCaller) -> None:
        self._link = link
        self._caller = caller
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.exports: dict[int, Export] = {}
        self._export_ids: dict[int, int] = {}
        self._imports: weakref.WeakValueDictionary[int, RemoteProxy] = weakref.WeakValueDictionary()
        self._releases: list[list[int]] = []
        self._release_scheduled = False

    def get(self, ref_id: Any) -> Export | None:
        """The export with ``ref_id`` (any thread)."""
        with self._lock:
            return self.exports.get(ref_id)

    def export_ref(self, obj: Any) -> RefDescriptor:
        """Codec hook: how ``obj`` travels by reference."""
        attrs: dict[str, Any] | None = None
        if isinstance(obj, Ref):
            attrs, obj = obj.attrs, obj.obj
        if isinstance(obj, RemoteProxy) and obj._rpc_peer is self._caller:
            return RefDescriptor(True, obj._rpc_ref)
        home = running_loop()
        if home is self._link.loop:
            home = None
        with self._lock:
            ref_id = self._export_ids.get(id(obj))
            exp = self.exports.get(ref_id) if ref_id is not None else None
            if exp is None:
                ref_id = next(self._ids)
                exp = Export(obj, home, public_methods(obj))
                self.exports[ref_id] = exp
                self._export_ids[id(obj)] = ref_id
            exp.count += 1
        if attrs is None:
            names = getattr(type(obj), "__rpc_attrs__", ())
            attrs = {n: getattr(obj, n, None) for n in names} if names else {}
        return RefDescriptor(False, [ref_id, exp.methods, attrs])

    def import_ref(self, code: int, payload: Any) -> Any:
        """Codec hook: the proxy for a reference the other side sent (or our own object)."""
        if code == EXT_BACKREF:
            exp = self.get(payload)
            if exp is None:
                raise TypeError(f"reference {payload!r} came home but is no longer exported")
            return exp.obj
        ref_id, methods, attrs = payload
        if type(ref_id) is not int or not isinstance(methods, list):
            raise TypeError("malformed reference")
        with self._lock:
            proxy = self._imports.get(ref_id)
            if proxy is None:
                proxy = RemoteProxy(self._caller, ref_id, frozenset(methods), dict(attrs or {}))
                self._imports[ref_id] = proxy
                fin = weakref.finalize(proxy, self._release, ref_id, proxy._rpc_count)
                fin.atexit = False
            proxy._rpc_count[0] += 1
        return proxy

    def _release(self, ref_id: int, count: list[int]) -> None:
        # Runs wherever the proxy was garbage-collected (any thread).
        if self._link.closed or count[0] <= 0:
            return
        self._releases.append([ref_id, count[0]])
        if not self._release_scheduled:
            self._release_scheduled = True
            self._link.threadsafe(self._flush_releases)

    def _flush_releases(self) -> None:
        self._release_scheduled = False
        batch, self._releases = self._releases, []
        if batch and not self._link.closed:
            self._link.send_quiet(env.pack(env.RELEASE, batch))

    def on_release(self, msg: list[Any]) -> None:
        """RELEASE ``[[ref_id, count], ...]``: the other side dropped its proxies."""
        with self._lock:
            for ref_id, count in msg[2]:
                exp = self.exports.get(ref_id)
                if exp is None:
                    continue
                exp.count -= count
                if exp.count <= 0:
                    del self.exports[ref_id]
                    self._export_ids.pop(id(exp.obj), None)

    def clear(self) -> None:
        """The connection closed: nothing stays exported."""
        with self._lock:
            self.exports.clear()
            self._export_ids.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self.exports)


__all__ = ["Export", "Refs", "public_methods"]
