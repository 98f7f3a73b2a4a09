"""Packages planted in a process's cwd that must never be imported (see
tests/process/test_worker_sys_path.py): each records who imported it, then refuses to load."""

from __future__ import annotations

from pathlib import Path

SHADOWED = ("msgpack", "zmq", "anyio", "takopi")


def plant_shadows(directory: Path) -> Path:
    """A package per name of :data:`SHADOWED` in ``directory``; the file they append to."""
    hits = directory / "shadow-hits.log"
    for name in SHADOWED:
        package = directory / name
        package.mkdir()
        (package / "__init__.py").write_text(
            "import os, sys\n"
            f"with open({str(hits)!r}, 'a') as fh:\n"
            f"    fh.write(f'{name} imported by {{sys.argv!r}} pid {{os.getpid()}}\\n')\n"
            f"raise ImportError('shadow {name} from the cwd')\n"
        )
    return hits


def shadow_hits(hits: Path) -> str:
    return hits.read_text() if hits.exists() else ""


__all__ = ["SHADOWED", "plant_shadows", "shadow_hits"]
