"""Typed JSONL event schemas of the built-in engine CLIs (codex, claude, opencode, pi).

Each module defines plain dataclasses for its CLI's events and a ``decode_event(data)`` that
checks and builds them (see :mod:`takopi.schemas._decode`); unknown event types decode to an
``Unknown…`` fallback instead of failing.
"""

from takopi.schemas._decode import SchemaError, decode

__all__ = ["SchemaError", "decode"]
