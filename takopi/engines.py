"""Engine backend registry (entry-point group ``takopi.engine_backends``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from takopi.backends import EngineBackend
from takopi.config import ConfigError
from takopi.ids import RESERVED_ENGINE_IDS
from takopi.plugins import (
    ENGINE_GROUP,
    PluginLoadFailed,
    PluginNotFoundError,
    list_ids,
    load_entrypoint,
)


def _check_engine(obj: Any) -> str | None:
    if not isinstance(obj, EngineBackend):
        return f"object is not an EngineBackend (got {type(obj).__name__})"
    return None


def list_backends(*, allowlist: Iterable[str] | None = None) -> list[str]:
    """Ids of installed engine backends, sorted (nothing imported)."""
    return list_ids(ENGINE_GROUP, allowlist=allowlist, reserved_ids=RESERVED_ENGINE_IDS)


def get_backend(engine_id: str, *, allowlist: Iterable[str] | None = None) -> EngineBackend:
    """Load the engine backend ``engine_id``; ``ConfigError`` if unknown or broken."""
    try:
        backend: EngineBackend = load_entrypoint(
            ENGINE_GROUP,
            engine_id,
            allowlist=allowlist,
            reserved_ids=RESERVED_ENGINE_IDS,
            validator=_check_engine,
        )
    except PluginNotFoundError as exc:
        available = ", ".join(exc.available) or "none"
        raise ConfigError(f"Unknown engine {engine_id!r}. Available: {available}.") from exc
    except PluginLoadFailed as exc:
        raise ConfigError(f"Failed to load engine {engine_id!r}: {exc.load_error.error}") from exc
    return backend


__all__ = ["get_backend", "list_backends"]
