"""Test-only takopi plugins (engines, a recording transport, a command)."""
