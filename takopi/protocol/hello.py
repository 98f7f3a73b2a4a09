"""The worker's first frame: who it is, what it speaks, and the secret of its spawn.

HELLO travels as a plain msgpack map inside the envelope (not through the codec): its layout is
frozen across protocol versions so that a mismatch can always be reported. :class:`Hello`
builds that map on the worker and reads it back, leniently, on the supervisor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Hello:
    """A worker's self-description; ``secret`` is the one-time secret its spawn was given."""

    kind: str
    id: str
    secret: str | None = None
    protocol: int | None = None
    api_version: int | None = None
    takopi_version: str | None = None
    python: str | None = None
    python_executable: str | None = None
    distribution: str | None = None
    pid: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The HELLO map (``None`` fields left out; the endpoint adds identity and versions)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Hello:
        """Read a HELLO map; fields of the wrong type become ``None`` (checked by the caller)."""
        pid = data.get("pid")
        api_version = data.get("api_version")
        protocol = data.get("protocol")
        return cls(
            kind=str(data.get("kind") or ""),
            id=str(data.get("id") or ""),
            secret=_str_or_none(data.get("secret")),
            protocol=protocol if type(protocol) is int else None,
            api_version=api_version if type(api_version) is int else None,
            takopi_version=_str_or_none(data.get("takopi_version")),
            python=_str_or_none(data.get("python")),
            python_executable=_str_or_none(data.get("python_executable")),
            distribution=_str_or_none(data.get("distribution")),
            pid=pid if type(pid) is int else None,
        )

    def public(self) -> Hello:
        """This hello without its secret (what may be kept and shown)."""
        return replace(self, secret=None)


__all__ = ["Hello"]
