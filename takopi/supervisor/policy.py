"""Restart policy of one worker: exponential backoff with jitter, quarantine, EX_CONFIG.

Pure logic with an injected clock and random source so it is unit-testable without sleeping.
The arbiter feeds it lifecycle facts (``on_spawn``, ``on_ready``, ``on_exit``) and obeys the
returned :class:`Decision`.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

EX_CONFIG = 78
"""sysexits.h EX_CONFIG: the worker's configuration is wrong; restarting cannot help."""

Action = Literal["restart", "quarantine", "disable"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tunables of the restart policy (defaults follow ARCHITECTURE.md §3)."""

    initial_backoff: float = 0.25
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Relative jitter: the delay is multiplied by a factor in ``[1 - jitter, 1 + jitter]``."""
    stable_after: float = 30.0
    """A worker ready for this long counts as stable: its backoff starts over."""
    max_restarts: int = 5
    window: float = 300.0
    """Quarantine after ``max_restarts`` restarts within ``window`` seconds."""
    max_failures_before_ready: int = 3
    """Quarantine after this many consecutive exits that happened before the handshake."""
    immediate_first_restart: bool = True
    """Restart a stable worker at once; backoff applies from the second restart on."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a worker exited."""

    action: Action
    delay: float = 0.0
    reason: str = ""


@dataclass(slots=True)
class WorkerPolicy:
    """Restart bookkeeping for one worker slot (survives the worker's incarnations)."""

    config: PolicyConfig = field(default_factory=PolicyConfig)
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    failures_before_ready: int = 0
    restarts: deque[float] = field(default_factory=deque)
    ready_since: float | None = None
    quarantined: bool = False
    disabled: bool = False
    last_error: str | None = None

    def on_spawn(self) -> None:
        """A new incarnation was started."""
        self.ready_since = None

    def on_ready(self) -> None:
        """The incarnation completed its handshake and serves requests."""
        self.ready_since = self.clock()
        self.failures_before_ready = 0

    def _stable(self, now: float) -> bool:
        return self.ready_since is not None and now - self.ready_since >= self.config.stable_after

    def backoff(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (0-based since the last reset)."""
        cfg = self.config
        if cfg.immediate_first_restart:
            if attempt == 0:
                return 0.0
            attempt -= 1
        base = min(cfg.max_backoff, cfg.initial_backoff * cfg.multiplier**attempt)
        factor = 1.0 + self.rng.uniform(-cfg.jitter, cfg.jitter)
        return max(0.0, min(cfg.max_backoff, base * factor))

    def on_exit(
        self, *, exit_code: int | None, was_ready: bool, error: str | None = None
    ) -> Decision:
        """Decide what follows an exit. ``exit_code`` is negative for a signal (Popen style)."""
        now = self.clock()
        if error:
            self.last_error = error
        if exit_code == EX_CONFIG:
            self.disabled = True
            return Decision("disable", reason=error or "configuration error (exit 78)")
        if self._stable(now):
            self.attempt = 0
        self.ready_since = None
        if was_ready:
            self.failures_before_ready = 0
        else:
            self.failures_before_ready += 1
            if self.failures_before_ready >= self.config.max_failures_before_ready:
                self.quarantined = True
                return Decision(
                    "quarantine",
                    reason=f"failed {self.failures_before_ready} times before becoming ready"
                    + (f": {self.last_error}" if self.last_error else ""),
                )
        while self.restarts and now - self.restarts[0] > self.config.window:
            self.restarts.popleft()
        if len(self.restarts) >= self.config.max_restarts:
            self.quarantined = True
            return Decision(
                "quarantine",
                reason=f"restarted {len(self.restarts)} times in {self.config.window:g}s"
                + (f": {self.last_error}" if self.last_error else ""),
            )
        delay = self.backoff(self.attempt)
        self.attempt += 1
        self.restarts.append(now)
        return Decision("restart", delay=delay, reason=error or "")

    def reset(self) -> None:
        """Forget history (an operator asked for a restart of a quarantined worker)."""
        self.attempt = 0
        self.failures_before_ready = 0
        self.restarts.clear()
        self.quarantined = False
        self.disabled = False
        self.ready_since = None


__all__ = ["EX_CONFIG", "Decision", "PolicyConfig", "WorkerPolicy"]
