"""Config hot reload (``watch_config = true``).

Polls the resolved config path with anyio (no extra dependency): a change of
``(st_mtime_ns, st_size)`` triggers a reload. A valid config is turned into a new runtime spec
and applied in place with ``runtime.update(...)``; an invalid one logs ``config.reload.failed``
and keeps the old runtime. Transport settings (``transport``, ``[transports.*]``) are never
applied live: such a change is reported with ``restart_required=True``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.runtime_loader import RuntimeSpec, build_runtime_spec
from takopi.settings import TakopiSettings, load_settings
from takopi.utils.json_state import file_signature

log = get_logger(__name__)

DEFAULT_POLL_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class ConfigReload:
    """One applied reload, passed to ``on_reload``."""

    settings: TakopiSettings
    runtime_spec: RuntimeSpec | None
    """The applied spec; None when ``runtime`` is remote (a worker's proxy: the supervisor
    reloads routing itself)."""
    config_path: Path
    restart_required: bool = False
    """True when transport settings changed: those only take effect after a restart."""

    @property
    def transport_changed(self) -> bool:
        """Alias of :attr:`restart_required`."""
        return self.restart_required


OnReload = Callable[[ConfigReload], Awaitable[None] | None]
SpecBuilder = Callable[..., RuntimeSpec]


def _transport_fingerprint(settings: TakopiSettings) -> tuple[str, Any]:
    return settings.transport, settings.transports.model_dump()


def _try_load(path: Path) -> TakopiSettings | None:
    try:
        settings, _ = load_settings(path)
    except ConfigError:
        return None
    return settings


async def watch_config(
    *,
    config_path: Path,
    runtime: Any,
    default_engine_override: str | None = None,
    on_reload: OnReload | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    build_spec: SpecBuilder = build_runtime_spec,
) -> None:
    """Watch ``config_path`` forever (cancel the task to stop) and hot-reload ``runtime``.

    ``build_spec(settings=, config_path=, default_engine_override=)`` makes the new spec
    (default: :func:`takopi.runtime_loader.build_runtime_spec`) for a runtime with an
    ``update`` method; a remote runtime (no ``update``) only gets ``refresh()`` if it has one,
    and ``on_reload`` still sees every valid change. ``on_reload`` may be sync or async.
    Disabled when ``MUTANT_UNDER_TEST`` is set.
    """
    if os.environ.get("MUTANT_UNDER_TEST"):
        return
    path = Path(config_path).expanduser()
    try:
        path = path.resolve()
    except OSError:
        pass
    last_sig = file_signature(path)
    current = _try_load(path) if last_sig is not None else None
    transport_fp = _transport_fingerprint(current) if current is not None else None
    last_problem: str | None = None
    # An in-process TransportRuntime is rebuilt here; a worker's runtime proxy has no
    # ``update`` because the supervisor applies reloads centrally.
    local = callable(getattr(runtime, "update", None))
    log.info("config.watch.started", path=str(path), local=local)
    while True:
        await anyio.sleep(poll_interval)
        sig = file_signature(path)
        if sig == last_sig:
            continue
        last_sig = sig
        if sig is None:
            if last_problem != "missing":
                log.warning("config.reload.failed", path=str(path), error="config file missing")
                last_problem = "missing"
            continue
        try:
            settings, _ = load_settings(path)
            # load_settings may have rewritten the file (migrations): don't reload that again.
            last_sig = file_signature(path)
            spec = (
                build_spec(
                    settings=settings,
                    config_path=path,
                    default_engine_override=default_engine_override,
                )
                if local
                else None
            )
        except Exception as exc:  # bad config, broken plugin: keep the old runtime
            message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            if last_problem != message:
                log.warning("config.reload.failed", path=str(path), error=message)
                last_problem = message
            continue
        last_problem = None
        new_fp = _transport_fingerprint(settings)
        restart_required = transport_fp is not None and new_fp != transport_fp
        if transport_fp is None:
            transport_fp = new_fp
        if restart_required:
            log.warning("config.reload.transport_changed", path=str(path), restart_required=True)
        if spec is not None:
            spec.apply(runtime)
        else:
            refresh = getattr(runtime, "refresh", None)
            if callable(refresh):
                refresh()
        log.info(
            "config.reloaded",
            path=str(path),
            default_engine=spec.default_engine if spec is not None else settings.default_engine,
            restart_required=restart_required,
        )
        if on_reload is not None:
            reload = ConfigReload(
                settings=settings,
                runtime_spec=spec,
                config_path=path,
                restart_required=restart_required,
            )
            try:
                result = on_reload(reload)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("config.reload.callback_failed", error=f"{type(exc).__name__}: {exc}")


__all__ = ["DEFAULT_POLL_INTERVAL", "ConfigReload", "watch_config"]
