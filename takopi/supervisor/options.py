"""What the supervisor is told to do: CLI options, the ``[supervisor]`` config table, exit
codes and stop timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.config import ConfigError
from takopi.supervisor.intake import ORPHAN_GRACE
from takopi.supervisor.policy import PolicyConfig

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_TRANSPORT_QUARANTINED = 3
WORKER_STOP_TIMEOUT = 3.0
TRANSPORT_STOP_TIMEOUT = 9.0
"""Above the transport worker's own bound (STOP_GRACE + LOOP_STOP_WAIT + 1 s)."""
FORCE_DRAIN_TIMEOUT = 10.0
"""``restart --force``: how long cancelled runs get to deliver their terminal reply."""

_POSITIVE_TUNABLES = (
    "ping_interval",
    "ping_timeout",
    "load_timeout",
    "shutdown_grace",
    "engine_wait",
    "orphan_grace",
)


@dataclass(slots=True)
class SupervisorOptions:
    """What the CLI passes to :func:`~takopi.supervisor.arbiter.run_supervisor`."""

    config_path: Path | None = None
    transport_override: str | None = None
    default_engine_override: str | None = None
    final_notify: bool = True
    debug: bool = False
    engines: list[str] | None = None
    """Restrict the engine workers to these ids (default: every installed engine)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ping_interval: float = 2.0
    ping_timeout: float = 3.0
    """A worker whose event loop does not answer a ping within this is killed and replaced."""
    load_timeout: float = 30.0
    shutdown_grace: float = 10.0
    """In-flight runs get this long to finish at shutdown before they are cancelled."""
    engine_wait: float = 30.0
    """How long a run waits for its engine worker to (re)start."""
    orphan_grace: float = ORPHAN_GRACE
    """How long messages a dead transport worker took (and never ran) wait for its successor
    to take them again before they are answered ``interrupted``."""
    engine_idle_s: float = 600.0
    """An engine worker no run used for this long is stopped (the next run starts it again).
    0 keeps started workers."""
    helper_idle_s: float = 30.0
    """Once an engine worker runs, the fork server and the spare stop when no worker was
    started for this long (later workers start fresh, ~0.1 s slower; the service is ~7 MiB
    smaller). 0 keeps them while engine workers run. With no engine worker running they stop
    after ``engine_idle_s``."""
    reload_drain: float = 3600.0
    """An engine whose config changed on reload restarts once its runs finished (at most
    this long; otherwise it keeps the old config until restarted)."""
    max_frame_bytes: int = 64 * 1024 * 1024
    extra_transports: list[str] = field(default_factory=list)
    """More transport workers sharing this supervisor's runs (per-thread serialization spans
    all of them); only the main transport's lock token is taken."""
    subreaper: bool = True
    standby: bool = True
    """Keep one pre-imported spare worker so a restart skips interpreter start-up (used when
    the zygote is off or unavailable)."""
    zygote: bool = True
    """Fork engine/command workers from a pre-imported fork server (needs the subreaper)."""
    engine_env: dict[str, list[str]] = field(default_factory=dict)
    """``[supervisor.engine_env]``: more credential-named variables a built-in engine may see
    (e.g. a custom codex provider's ``env_key``), see :mod:`takopi.supervisor.worker_env`."""
    handle_signals: bool = True
    echo_worker_output: bool = True

    def apply_table(self, table: Any) -> None:
        """``[supervisor]`` tunables: ping_interval, ping_timeout, load_timeout,
        shutdown_grace, engine_wait, orphan_grace, engine_idle_s, helper_idle_s,
        max_frame_bytes, extra_transports, engine_env, and a ``[supervisor.restart]`` table
        with :class:`PolicyConfig` fields."""
        if not isinstance(table, dict):
            raise ConfigError("Invalid `supervisor` config; expected a table.")
        for key in _POSITIVE_TUNABLES:
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"Invalid `supervisor.{key}`; expected a positive number.")
                setattr(self, key, float(value))
        for key in ("engine_idle_s", "helper_idle_s"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(
                        f"Invalid `supervisor.{key}`; expected a number of seconds >= 0."
                    )
                setattr(self, key, float(value))
        if "max_frame_bytes" in table:
            value = table["max_frame_bytes"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ConfigError(
                    "Invalid `supervisor.max_frame_bytes`; expected an integer >= 1024."
                )
            self.max_frame_bytes = value
        extra = table.get("extra_transports")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
                raise ConfigError("Invalid `supervisor.extra_transports`; expected a list of ids.")
            self.extra_transports = list(extra)
        engine_env = table.get("engine_env")
        if engine_env is not None:
            if not isinstance(engine_env, dict) or not all(
                isinstance(names, list) and all(isinstance(n, str) and n for n in names)
                for names in engine_env.values()
            ):
                raise ConfigError(
                    "Invalid `supervisor.engine_env`; expected a table of engine id = "
                    '["VARIABLE", ...].'
                )
            self.engine_env = {str(k): list(v) for k, v in engine_env.items()}
        restart = table.get("restart")
        if restart is not None:
            if not isinstance(restart, dict):
                raise ConfigError("Invalid `supervisor.restart`; expected a table.")
            try:
                self.policy = PolicyConfig(**restart)
            except TypeError as exc:
                raise ConfigError(f"Invalid `supervisor.restart`: {exc}") from None


__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_TRANSPORT_QUARANTINED",
    "FORCE_DRAIN_TIMEOUT",
    "TRANSPORT_STOP_TIMEOUT",
    "WORKER_STOP_TIMEOUT",
    "SupervisorOptions",
]
