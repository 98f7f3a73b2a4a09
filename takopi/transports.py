"""Transport backends: the protocol transport plugins implement, and their registry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from takopi.backends import EngineBackend, SetupIssue
from takopi.config import ConfigError
from takopi.plugins import (
    TRANSPORT_GROUP,
    PluginLoadFailed,
    PluginNotFoundError,
    list_ids,
    load_entrypoint,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps this module import-light
    from takopi.transport_runtime import TransportRuntime


@dataclass(frozen=True, slots=True)
class SetupResult:
    """Outcome of ``check_setup``: the issues found and the config path checked."""

    issues: Sequence[SetupIssue] = ()
    config_path: Path | None = None

    @property
    def ok(self) -> bool:
        """True when there are no issues."""
        return not self.issues


class TransportBackend(Protocol):
    """A transport plugin (Telegram, console, Slack, …).

    Plugins may either match this structurally or inherit from it explicitly.
    """

    id: str
    description: str

    def check_setup(
        self,
        engine_backend: EngineBackend,
        *,
        transport_override: str | None = None,
    ) -> SetupResult:
        """Validate config and environment for running with ``engine_backend``."""
        ...

    async def interactive_setup(self, *, force: bool) -> bool:
        """Run onboarding; return True if a usable config was written."""
        ...

    def lock_token(
        self,
        *,
        transport_config: dict[str, object],
        _config_path: Path,
    ) -> str | None:
        """A secret identifying this transport instance (fingerprinted into the lockfile)."""
        ...

    def build_and_run(
        self,
        *,
        transport_config: dict[str, object],
        config_path: Path,
        runtime: TransportRuntime,
        final_notify: bool,
        default_engine_override: str | None,
    ) -> None:
        """Build the transport and run its loop until shutdown (blocks; may call anyio.run)."""
        ...


_REQUIRED_METHODS = ("check_setup", "interactive_setup", "lock_token", "build_and_run")


def _check_transport(obj: Any) -> str | None:
    missing = [m for m in _REQUIRED_METHODS if not callable(getattr(obj, m, None))]
    if missing:
        return f"object is not a TransportBackend (missing {', '.join(missing)})"
    return None


def list_transports(*, allowlist: Iterable[str] | None = None) -> list[str]:
    """Ids of installed transport backends, sorted (nothing imported)."""
    return list_ids(TRANSPORT_GROUP, allowlist=allowlist)


def get_transport(transport_id: str, *, allowlist: Iterable[str] | None = None) -> TransportBackend:
    """Load the transport backend ``transport_id``; ``ConfigError`` if unknown or broken."""
    try:
        backend: TransportBackend = load_entrypoint(
            TRANSPORT_GROUP, transport_id, allowlist=allowlist, validator=_check_transport
        )
    except PluginNotFoundError as exc:
        available = ", ".join(exc.available) or "none"
        raise ConfigError(f"Unknown transport {transport_id!r}. Available: {available}.") from exc
    except PluginLoadFailed as exc:
        raise ConfigError(
            f"Failed to load transport {transport_id!r}: {exc.load_error.error}"
        ) from exc
    return backend


__all__ = ["SetupResult", "TransportBackend", "get_transport", "list_transports"]
