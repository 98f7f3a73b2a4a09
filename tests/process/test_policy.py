"""Restart policy with an injected clock: backoff growth, jitter bounds, reset, quarantine."""

from __future__ import annotations

import random

from takopi.supervisor.policy import EX_CONFIG, PolicyConfig, WorkerPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **kw: object) -> WorkerPolicy:
    return WorkerPolicy(config=PolicyConfig(**kw), clock=clock, rng=random.Random(7))  # type: ignore[arg-type]


def test_backoff_grows_with_jitter_and_caps() -> None:
    clock = Clock()
    policy = make(clock, max_restarts=100, jitter=0.2)
    delays = []
    for _ in range(12):
        policy.on_spawn()
        policy.on_ready()
        clock.now += 1.0  # never stable (< 30 s)
        decision = policy.on_exit(exit_code=-9, was_ready=True)
        assert decision.action == "restart"
        delays.append(decision.delay)
    assert delays[0] == 0.0  # a stable worker comes back at once
    assert 0.2 <= delays[1] <= 0.3  # 0.25 ± 20 %
    assert 0.4 <= delays[2] <= 0.6
    assert 0.8 <= delays[3] <= 1.2
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] >= 24.0  # capped at 30 with jitter


def test_stable_period_resets_backoff() -> None:
    clock = Clock()
    policy = make(clock, stable_after=30.0, max_restarts=100)
    for _ in range(4):
        policy.on_ready()
        clock.now += 1
        policy.on_exit(exit_code=1, was_ready=True)
    policy.on_ready()
    clock.now += 31
    decision = policy.on_exit(exit_code=1, was_ready=True)
    assert decision.action == "restart" and decision.delay == 0.0


def test_quarantine_after_too_many_restarts_in_window() -> None:
    clock = Clock()
    policy = make(clock, max_restarts=5, window=300.0)
    actions = []
    for _ in range(6):
        policy.on_ready()
        clock.now += 10
        actions.append(policy.on_exit(exit_code=-9, was_ready=True, error="boom").action)
    assert actions == ["restart"] * 5 + ["quarantine"]
    assert policy.quarantined
    assert policy.last_error == "boom"


def test_restarts_outside_window_are_forgotten() -> None:
    clock = Clock()
    policy = make(clock, max_restarts=2, window=300.0, stable_after=1e9)
    for _ in range(2):
        policy.on_ready()
        clock.now += 10
        assert policy.on_exit(exit_code=1, was_ready=True).action == "restart"
    clock.now += 400
    policy.on_ready()
    assert policy.on_exit(exit_code=1, was_ready=True).action == "restart"


def test_repeated_failure_before_ready_quarantines() -> None:
    clock = Clock()
    policy = make(clock, max_failures_before_ready=3)
    results = []
    for _ in range(3):
        policy.on_spawn()
        clock.now += 0.1
        results.append(policy.on_exit(exit_code=2, was_ready=False, error="ImportError: nope"))
    assert [r.action for r in results] == ["restart", "restart", "quarantine"]
    assert "ImportError: nope" in results[-1].reason


def test_ready_clears_failures_before_ready() -> None:
    clock = Clock()
    policy = make(clock, max_failures_before_ready=2, max_restarts=100)
    policy.on_exit(exit_code=2, was_ready=False)
    policy.on_ready()
    assert policy.on_exit(exit_code=2, was_ready=True).action == "restart"
    assert policy.on_exit(exit_code=2, was_ready=False).action == "restart"


def test_ex_config_is_never_restarted() -> None:
    policy = make(Clock())
    decision = policy.on_exit(exit_code=EX_CONFIG, was_ready=False, error="bad [codex] table")
    assert decision.action == "disable"
    assert policy.disabled
    assert "bad [codex] table" in decision.reason


def test_reset_clears_quarantine() -> None:
    clock = Clock()
    policy = make(clock, max_failures_before_ready=1)
    assert policy.on_exit(exit_code=1, was_ready=False).action == "quarantine"
    policy.reset()
    assert not policy.quarantined
    assert policy.on_exit(exit_code=1, was_ready=True).action == "restart"
