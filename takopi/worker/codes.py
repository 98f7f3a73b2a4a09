"""Worker exit codes (the supervisor's restart policy keys on them)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CRASHED = 1
"""The hosted plugin raised while serving (e.g. ``build_and_run`` failed)."""
EXIT_USAGE = 2
"""Bad command line or no secret."""
EXIT_PLUGIN_FAILED = 3
"""The plugin failed to import or to build (reported as ``worker.failed`` first)."""
EXIT_REFUSED = 4
"""The supervisor refused the handshake (wrong secret, version mismatch, …)."""
EXIT_PEER_LOST = 5
"""The supervisor went away."""
EX_CONFIG = 78
"""sysexits EX_CONFIG: invalid configuration; the supervisor does not restart it."""

__all__ = [
    "EXIT_CRASHED",
    "EXIT_OK",
    "EXIT_PEER_LOST",
    "EXIT_PLUGIN_FAILED",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "EX_CONFIG",
]
