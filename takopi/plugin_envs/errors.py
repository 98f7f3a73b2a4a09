"""The one error type of plugin environment management."""

from __future__ import annotations


class PluginEnvError(Exception):
    """A plugin environment operation failed; the message is shown to the user as-is.

    Raised before anything was changed, or after what was changed has been rolled back.
    """


__all__ = ["PluginEnvError"]
