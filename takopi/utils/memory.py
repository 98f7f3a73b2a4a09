"""Give freed heap back to the OS after start-up and after runs (keeps idle workers small)."""

from __future__ import annotations

import gc

from takopi.utils.libc import malloc_trim


def trim_memory() -> None:
    """``gc.collect()`` then glibc ``malloc_trim(0)`` (no-op where unavailable)."""
    gc.collect()
    malloc_trim()


__all__ = ["trim_memory"]
