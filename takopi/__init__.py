"""takopi: drive coding agents from chat, supervised, with isolated plugin workers."""

import sys as _sys

# A literal, not importlib.metadata: every process imports this package first, and reading
# the distribution metadata costs tens of milliseconds of start-up (a test keeps the two equal).
__version__ = "0.22.3.post1"

# ``import httpx`` also tries its command-line client, which imports click and pygments (about
# 2 MiB in every process that talks HTTP) before it fails without ``rich``. Nothing in takopi
# runs that client; marking the module absent makes httpx take its own fallback at once.
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = ["__version__"]
