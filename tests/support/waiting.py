"""Bounded polling: the only way tests wait for something another process or task does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def _describe(predicate: Callable[[], object], what: str | None) -> str:
    return what or getattr(predicate, "__qualname__", None) or repr(predicate)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    what: str | None = None,
    *,
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; fail the test
    with ``AssertionError`` (naming ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout:g}s: {_describe(predicate, what)}"
            )
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str | None = None,
    *,
    interval: float = 0.005,
) -> T:
    """:func:`wait_until` for async tests: the event loop keeps running between polls."""
    with anyio.move_on_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:g}s: {_describe(predicate, what)}")


__all__ = ["wait_until", "wait_until_async"]
