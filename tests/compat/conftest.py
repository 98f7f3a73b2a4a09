"""Fixtures for the plugin compatibility suite (published PyPI plugins, see plugins.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.plugins import compat_dir
from tests.process.conftest import supervisor  # noqa: F401  (the process suite's harness)


@pytest.fixture(scope="session")
def compat_venvs() -> Path:
    """Directory holding the ``py311`` / ``py313`` compat venvs (fails if not installed)."""
    try:
        return compat_dir()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
