"""Give freed heap back to the OS after start-up and after runs (keeps idle workers small)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Any

_libc: Any = None


def trim_memory() -> None:
    """``gc.collect()`` then glibc ``malloc_trim(0)`` (no-op where unavailable)."""
    global _libc
    gc.collect()
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)


__all__ = ["trim_memory"]
