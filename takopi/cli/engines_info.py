"""Which engine CLIs are installed: the table shown by the wizard and used for the default
engine fallback (the ``demo`` engine stands in only when no real agent CLI is on PATH)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from takopi.config import ConfigError
from takopi.engines import get_backend, list_backends
from takopi.runtime_loader import FALLBACK_DEFAULT_ENGINE

DEMO_ENGINE = "demo"


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """One engine backend as the CLI sees it (its plugin imported in-process)."""

    id: str
    cli: str
    installed: bool
    install_cmd: str | None = None
    error: str | None = None


def engine_infos(
    allowlist: Iterable[str] | None = None, *, include_demo: bool = False
) -> list[EngineInfo]:
    """Every allowed engine backend, sorted by id, with its CLI's PATH status."""
    infos: list[EngineInfo] = []
    for engine_id in list_backends(allowlist=allowlist):
        if engine_id == DEMO_ENGINE and not include_demo:
            continue
        try:
            backend = get_backend(engine_id, allowlist=allowlist)
        except ConfigError as exc:
            infos.append(EngineInfo(engine_id, engine_id, False, None, str(exc)))
            continue
        cli = backend.cli_cmd or backend.id
        infos.append(EngineInfo(engine_id, cli, shutil.which(cli) is not None, backend.install_cmd))
    return infos


def fallback_default_engine(
    engine_ids: Iterable[str], *, project_aliases: Iterable[str] = ()
) -> str | None:
    """The default engine when neither ``--engine``/``takopi <engine>`` nor the config names one.

    The reference falls back to ``codex``. When takopi's own engines are the only ones
    installed, none of their CLIs is on ``PATH`` and the ``demo`` engine exists, the demo engine
    is used instead so a newcomer sees takopi work. Never when a ``[projects.demo]`` alias is
    configured (the alias wins) or an engine plugin is installed (it may be usable: the
    reference fallback stays). None means "keep the reference fallback".
    """
    from takopi.runners.demo import REAL_ENGINE_CLIS, real_engine_on_path

    ids = set(engine_ids)
    if DEMO_ENGINE not in ids or DEMO_ENGINE in {a.strip().lower() for a in project_aliases}:
        return None
    if ids - set(REAL_ENGINE_CLIS) - {DEMO_ENGINE} or real_engine_on_path():
        return None
    return DEMO_ENGINE


__all__ = [
    "DEMO_ENGINE",
    "FALLBACK_DEFAULT_ENGINE",
    "EngineInfo",
    "engine_infos",
    "fallback_default_engine",
]
