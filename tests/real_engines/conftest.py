"""Fixtures for the tier-2 tests: real agent CLIs, driven through the takopi runners, against
the fake model server on 127.0.0.1.

Each test gets (in this order, so that every socket and child lives in the isolated netns):
a loopback-only network namespace when the process may create one (:mod:`.netns`), a fresh
:class:`FakeModelServer`, and per engine a temp HOME + work dir whose environment replaces
``os.environ`` for the duration of the test (the runners inherit ``os.environ``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from takopi.logging import get_logger
from tests.fakes.model_server import FakeModelServer
from tests.real_engines.engines import (
    EngineSandbox,
    install_engines,
    live_processes,
    prepare_engine,
)
from tests.real_engines.netns import isolated_network

log = get_logger(__name__)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Every process a test started (CLIs, their children) must be gone after it (3 s grace)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    new = [p for p in me.children(recursive=True) if p.pid not in before]
    deadline = time.monotonic() + 3.0
    while live_processes(new) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = []
    for proc in live_processes(new):
        try:
            leftover.append((proc.pid, proc.cmdline()))
        except psutil.Error:
            continue
    assert not leftover, f"processes left behind: {leftover}"


@pytest.fixture(scope="session")
def engines_bin() -> Path:
    """Bin dir of the pinned CLIs (runs scripts/install-engines.sh; instant when cached)."""
    bin_dir = install_engines()
    for cli in ("codex", "claude", "opencode", "pi"):
        assert (bin_dir / cli).exists(), f"{cli} missing from {bin_dir}"
    return bin_dir


@pytest.fixture
def isolated_net() -> Iterator[bool]:
    """True when this test runs inside a loopback-only network namespace."""
    with isolated_network() as isolated:
        log.info("real_engines.netns", isolated=isolated)
        yield isolated


@pytest.fixture
def fake_model(isolated_net: bool) -> Iterator[FakeModelServer]:
    """The fake model provider, bound to 127.0.0.1 on a free port."""
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def engine_sandbox(
    fake_model: FakeModelServer,
    engines_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., EngineSandbox]:
    """Factory: ``engine_sandbox(engine, pi_api=..., **extra_env)`` prepares HOME/config/work
    dir for the engine and makes its environment the process environment (restored after the
    test)."""

    def make(engine: str, *, pi_api: str = "openai-completions", **extra_env: str) -> EngineSandbox:
        sandbox = prepare_engine(
            engine, fake_model.base_url, tmp_path / engine, engines_bin, pi_api=pi_api
        )
        sandbox.env.update(extra_env)
        env = sandbox.full_env()
        for key in list(os.environ):
            if key not in env:
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return sandbox

    return make
