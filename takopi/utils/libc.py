"""The C library's ``prctl`` and ``malloc_trim``, through ctypes.

The library is this process's own symbol namespace (``dlopen(NULL)``), which holds the C library
CPython is linked against: no ``ctypes.util.find_library``, which costs every process that
imports it ~0.6 MiB and may run ``ldconfig``.
"""

from __future__ import annotations

import ctypes
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc: Any = None


def _library() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    return _libc


def prctl(option: int, arg: int) -> bool:
    """``prctl(option, arg, 0, 0, 0)``; False where it is unavailable or fails."""
    function = getattr(_library() or None, "prctl", None)
    if function is None:
        return False
    return int(function(option, arg, 0, 0, 0)) == 0


def malloc_trim() -> None:
    """glibc's ``malloc_trim(0)``: free heap pages go back to the OS (no-op elsewhere)."""
    function = getattr(_library() or None, "malloc_trim", None)
    if function is not None:
        function(0)


__all__ = ["PR_SET_CHILD_SUBREAPER", "PR_SET_PDEATHSIG", "malloc_trim", "prctl"]
