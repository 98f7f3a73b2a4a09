"""Fixtures for supervisor/worker process tests: a real supervisor subprocess driving the
recording test transport (:mod:`tests.support.supervisor`), cleaned up after each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.processes import marked_processes
from tests.support.supervisor import (
    PLUGIN_DIST,
    REPO,
    SupervisorHarness,
    assert_no_leftovers,
    new_harness,
)
from tests.support.waiting import wait_until


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def supervisor() -> Iterator[SupervisorHarness]:
    harness = new_harness()
    try:
        yield harness
    finally:
        harness.kill_all()
        shutil.rmtree(harness.base, ignore_errors=True)


# Kept importable from here for the suites that used them before tests/support existed.
__all__ = [
    "PLUGIN_DIST",
    "REPO",
    "SupervisorHarness",
    "assert_no_leftovers",
    "marked_processes",
    "supervisor",
    "wait_until",
]
