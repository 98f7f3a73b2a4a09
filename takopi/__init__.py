"""takopi: drive coding agents from chat, supervised, with isolated plugin workers."""

# A literal, not importlib.metadata: every process imports this package first, and reading
# the distribution metadata costs tens of milliseconds of start-up (a test keeps the two equal).
__version__ = "0.22.3.post1"

__all__ = ["__version__"]
