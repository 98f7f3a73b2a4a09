"""takopi: drive coding agents from chat, supervised, with isolated plugin workers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("takopi")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.22.3.post1"

__all__ = ["__version__"]
