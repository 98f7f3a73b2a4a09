"""Test-only takopi plugins for tests/cli: a scripted engine and a file-driven transport."""
