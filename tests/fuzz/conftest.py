"""Hypothesis profiles for the fuzz tests.

``ci`` (the default) keeps every property to a modest number of examples and turns the
per-example deadline off (shared CI machines are slow and noisy; the tests bound their time
with pytest-timeout instead). ``deep`` is for local or bench runs that hunt for bugs::

    HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/fuzz -p no:cacheprovider

Tests whose examples are expensive (the chat loop drives a real transport) scale their own
example count from the loaded profile with :func:`scaled`.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "print_blob": True, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=60, **_COMMON)
settings.register_profile("deep", max_examples=2000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The deep profile runs ~30x the examples: give its tests an hour each, not the
    suite's two minutes (the CI profile keeps the usual bounds)."""
    if PROFILE != "deep":
        return
    for item in items:
        if "tests/fuzz/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(3600))


def scaled(fraction: float, *, minimum: int = 5) -> int:
    """``fraction`` of the loaded profile's ``max_examples`` (at least ``minimum``)."""
    return max(minimum, int(settings.default.max_examples * fraction))
