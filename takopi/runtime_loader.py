"""Settings + discovered engine backends → a runtime spec (router, projects, plugin configs).

This is the in-process path: runners are built here with ``backend.build_runner``. Engine
health follows the reference: an invalid engine table gives ``bad_config`` (runner rebuilt with
``{}`` defaults, still usable); a runner that cannot be built at all gives ``load_error`` (left
out of the router); a CLI (``cli_cmd or id``) missing from ``PATH`` gives ``missing_cli``
(kept, unavailable). Any non-ok status on the default engine is a :class:`ConfigError`.
The built-in ``demo`` engine is only offered when no real engine is available (or it is the
chosen default engine), and never when a ``[projects.demo]`` alias exists
(:func:`demo_engine_wanted`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.backends import EngineBackend
from takopi.config import ConfigError
from takopi.engines import get_backend, list_backends
from takopi.ids import RESERVED_CHAT_COMMANDS
from takopi.logging import get_logger
from takopi.projects import ProjectsConfig
from takopi.router import AutoRouter, EngineStatus, RunnerEntry
from takopi.transport_runtime import TransportRuntime

if TYPE_CHECKING:  # pragma: no cover
    from takopi.runner import Runner
    from takopi.settings import TakopiSettings
    from takopi.settings_view import SettingsAccess

log = get_logger(__name__)

FALLBACK_DEFAULT_ENGINE = "codex"
DEMO_ENGINE = "demo"

Which = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """How one engine backend fared while building the runtime."""

    engine: str
    status: EngineStatus
    issue: str | None = None

    @property
    def available(self) -> bool:
        """``ok`` and ``bad_config`` engines can run."""
        return self.status in ("ok", "bad_config")


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """Everything a :class:`TransportRuntime` is built from, plus diagnostics."""

    router: AutoRouter
    projects: ProjectsConfig
    allowlist: tuple[str, ...] | None
    plugin_configs: dict[str, dict[str, Any]]
    watch_config: bool
    config_path: Path
    transport_id: str
    health: tuple[EngineHealth, ...] = field(default=())

    @property
    def default_engine(self) -> str:
        """The resolved default engine."""
        return self.router.default_engine

    def to_runtime(self) -> TransportRuntime:
        """A fresh in-process :class:`TransportRuntime`."""
        return TransportRuntime(
            router=self.router,
            projects=self.projects,
            allowlist=self.allowlist,
            config_path=self.config_path,
            plugin_configs=self.plugin_configs,
            watch_config=self.watch_config,
        )

    def apply(self, runtime: Any) -> None:
        """Hot-reload ``runtime`` in place (``runtime.update(...)``)."""
        runtime.update(
            router=self.router,
            projects=self.projects,
            allowlist=self.allowlist,
            config_path=self.config_path,
            plugin_configs=self.plugin_configs,
            watch_config=self.watch_config,
        )


def resolve_default_engine(
    *,
    override: str | None,
    settings: SettingsAccess | None,
    engine_ids: Iterable[str],
) -> str:
    """Default engine: ``override`` → ``settings.default_engine`` → ``"codex"``.

    Raises ``ConfigError("Unknown default engine 'x'. Available: ...")`` if it is not installed.
    """
    engine = override or (settings.default_engine if settings is not None else None)
    engine = engine or FALLBACK_DEFAULT_ENGINE
    known = sorted(engine_ids)
    if engine not in known:
        raise ConfigError(f"Unknown default engine {engine!r}. Available: {', '.join(known)}.")
    return engine


def demo_engine_wanted(
    *,
    real_engine_available: bool,
    chosen_default: str | None,
    project_aliases: Iterable[str],
) -> bool:
    """Whether the built-in ``demo`` engine is offered: it stands in for real engines only
    when none can run, or when it was chosen as the default engine; a ``[projects.demo]``
    alias always wins over it (a reference config must load unchanged)."""
    if DEMO_ENGINE in {alias.strip().lower() for alias in project_aliases}:
        return False
    return chosen_default == DEMO_ENGINE or not real_engine_available


def cli_issue(backend: EngineBackend, which: Which = shutil.which) -> str | None:
    """Why the backend's CLI is unusable (not on PATH), or None."""
    cmd = backend.cli_cmd or backend.id
    if which(cmd) is not None:
        return None
    issue = f"{cmd} not found on PATH"
    if backend.install_cmd:
        issue += f" (install: {backend.install_cmd})"
    return issue


def build_engine_entry(
    backend: EngineBackend,
    *,
    settings: TakopiSettings,
    config_path: Path,
    which: Which = shutil.which,
) -> tuple[RunnerEntry | None, EngineHealth]:
    """Build one engine's runner and health; the entry is None for ``load_error``."""
    engine = backend.id
    status: EngineStatus = "ok"
    issue: str | None = None
    runner: Runner | None = None
    try:
        engine_config = settings.engine_config(engine, config_path=config_path)
    except ConfigError as exc:
        engine_config, status, issue = {}, "bad_config", str(exc)
    try:
        runner = backend.build_runner(engine_config, config_path)
    except Exception as exc:
        if engine_config:
            status, issue = "bad_config", _describe(exc)
            try:
                runner = backend.build_runner({}, config_path)
            except Exception as retry_exc:
                status, issue = "load_error", _describe(retry_exc)
        else:
            status, issue = "load_error", _describe(exc)
    if runner is None:
        return None, EngineHealth(engine, "load_error", issue)
    missing = cli_issue(backend, which)
    if missing is not None:
        status, issue = "missing_cli", missing
    return RunnerEntry(engine=engine, runner=runner, status=status, issue=issue), EngineHealth(
        engine, status, issue
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def discover_backends(
    allowlist: Iterable[str] | None,
) -> tuple[list[EngineBackend], list[EngineHealth]]:
    """Load every allowed engine backend; failures become ``load_error`` health records."""
    backends: list[EngineBackend] = []
    failed: list[EngineHealth] = []
    for engine_id in list_backends(allowlist=allowlist):
        try:
            backends.append(get_backend(engine_id, allowlist=allowlist))
        except ConfigError as exc:
            failed.append(EngineHealth(engine_id, "load_error", str(exc)))
    return backends, failed


def _without_unwanted_demo(
    backends: list[EngineBackend],
    *,
    settings: TakopiSettings,
    override: str | None,
    which: Which,
) -> list[EngineBackend]:
    """``backends`` minus ``demo`` unless :func:`demo_engine_wanted` (a real engine counts as
    available when its CLI is on ``PATH``)."""
    if not any(b.id == DEMO_ENGINE for b in backends):
        return backends
    real = any(b.id != DEMO_ENGINE and cli_issue(b, which) is None for b in backends)
    if demo_engine_wanted(
        real_engine_available=real,
        chosen_default=override or settings.default_engine,
        project_aliases=settings.project_aliases(),
    ):
        return backends
    return [b for b in backends if b.id != DEMO_ENGINE]


def build_runtime_spec(
    *,
    settings: TakopiSettings,
    config_path: Path,
    default_engine_override: str | None = None,
    backends: Iterable[EngineBackend] | None = None,
    which: Which = shutil.which,
    reserved: Iterable[str] = RESERVED_CHAT_COMMANDS,
) -> RuntimeSpec:
    """Build the runtime spec for ``settings``.

    ``backends`` defaults to every installed engine allowed by ``[plugins] enabled``.
    Raises :class:`ConfigError` for an unknown or unavailable default engine and for invalid
    projects.
    """
    config_path = Path(config_path)
    allowlist = settings.plugins_allowlist()
    health: list[EngineHealth] = []
    if backends is None:
        backend_list, failed = discover_backends(allowlist)
        health.extend(failed)
    else:
        backend_list = list(backends)
    backend_list = _without_unwanted_demo(
        backend_list,
        settings=settings,
        override=default_engine_override,
        which=which,
    )
    engine_ids = sorted({b.id for b in backend_list} | {h.engine for h in health})
    default_engine = resolve_default_engine(
        override=default_engine_override, settings=settings, engine_ids=engine_ids
    )
    entries: list[RunnerEntry] = []
    for backend in backend_list:
        entry, engine_health = build_engine_entry(
            backend, settings=settings, config_path=config_path, which=which
        )
        health.append(engine_health)
        if entry is not None:
            entries.append(entry)
    health.sort(key=lambda h: h.engine)
    for item in health:
        if item.status == "ok":
            continue
        if item.engine == default_engine:
            raise ConfigError(f"Default engine {default_engine!r} unavailable: {item.issue}")
        log.warning("setup.warning", engine=item.engine, status=item.status, issue=item.issue)
    projects = settings.to_projects_config(
        config_path=config_path, engine_ids=engine_ids, reserved=tuple(reserved)
    )
    return RuntimeSpec(
        router=AutoRouter(entries, default_engine),
        projects=projects,
        allowlist=tuple(allowlist) if allowlist else None,
        plugin_configs=settings.plugin_configs(),
        watch_config=settings.watch_config,
        config_path=config_path,
        transport_id=settings.transport,
        health=tuple(health),
    )


__all__ = [
    "DEMO_ENGINE",
    "FALLBACK_DEFAULT_ENGINE",
    "EngineHealth",
    "RuntimeSpec",
    "build_engine_entry",
    "build_runtime_spec",
    "cli_issue",
    "demo_engine_wanted",
    "discover_backends",
    "resolve_default_engine",
]
