"""Read what another process holds: its start environment (``/proc/<pid>/environ``) and its
memory (``/proc/<pid>/mem``), to prove where a secret did or did not go. Test-only: it needs
ptrace access to the process (same user, or root)."""

from __future__ import annotations

import contextlib

_CHUNK = 8 * 1024 * 1024
_SKIP = ("[vvar]", "[vsyscall]", "[vvar_vclock]")


def start_environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` was executed with (changes made later are not shown)."""
    with open(f"/proc/{pid}/environ", "rb") as fh:
        raw = fh.read()
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def memory_contains(pid: int, needle: bytes) -> bool:
    """Whether any readable mapping of ``pid`` holds ``needle`` (freed heap included)."""
    overlap = len(needle) - 1
    with open(f"/proc/{pid}/maps") as fh:
        maps = fh.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if len(fields) < 2 or "r" not in fields[1]:
                continue
            if len(fields) >= 6 and fields[5] in _SKIP:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            tail = b""
            offset = start
            while offset < end:
                size = min(_CHUNK, end - offset)
                try:
                    mem.seek(offset)
                    chunk = mem.read(size)
                except (OSError, OverflowError):
                    break
                if not chunk:
                    break
                if needle in tail + chunk:
                    return True
                tail = chunk[-overlap:] if overlap else b""
                offset += len(chunk)
    return False


def holds_secret(pid: int, secret: str) -> list[str]:
    """Where ``pid`` holds ``secret``: ``"environ"`` and/or ``"memory"`` (empty: nowhere)."""
    where = []
    with contextlib.suppress(OSError):
        if any(secret in v for v in start_environ(pid).values()):
            where.append("environ")
    if memory_contains(pid, secret.encode()):
        where.append("memory")
    return where


__all__ = ["holds_secret", "memory_contains", "start_environ"]
