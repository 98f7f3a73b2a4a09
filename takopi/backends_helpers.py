"""Small helpers for backends' setup checks."""

from __future__ import annotations

from takopi.backends import SetupIssue


def install_issue(cmd: str, install_cmd: str | None) -> SetupIssue:
    """The setup issue for a missing CLI: title ``install <cmd>``, line ``$ <install_cmd>``."""
    lines = (f"$ {install_cmd}",) if install_cmd else ()
    return SetupIssue(f"install {cmd}", lines)


__all__ = ["install_issue"]
