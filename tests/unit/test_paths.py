"""Run base dir contextvar, path/command relativization and run options."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from takopi.runners.run_options import EngineRunOptions, apply_run_options, get_run_options
from takopi.utils.paths import (
    get_run_base_dir,
    relativize_command,
    relativize_path,
    reset_run_base_dir,
    set_run_base_dir,
)


def test_set_and_reset_run_base_dir() -> None:
    assert get_run_base_dir() is None
    outer = set_run_base_dir("/a")
    inner = set_run_base_dir(Path("/b"))
    assert get_run_base_dir() == Path("/b")
    reset_run_base_dir(inner)
    assert get_run_base_dir() == Path("/a")
    reset_run_base_dir(outer)
    assert get_run_base_dir() is None


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        ("/repo/src/a.py", "/repo", "src/a.py"),
        ("/repo/src/a.py", "/repo/", "src/a.py"),
        ("/repo", "/repo", "."),
        ("/repo2/a.py", "/repo", "/repo2/a.py"),  # sibling with a common prefix
        ("/other/x", "/repo", "/other/x"),
        ("relative/x", "/repo", "relative/x"),
        ("/repo/a.py", None, "/repo/a.py"),
    ],
)
def test_relativize_path(path: str, base: str | None, expected: str) -> None:
    assert relativize_path(path, base) == expected


def test_relativize_path_uses_run_base_dir_by_default() -> None:
    token = set_run_base_dir("/work/proj")
    try:
        assert relativize_path("/work/proj/x/y") == "x/y"
        assert relativize_command("cat /work/proj/x/y") == "cat x/y"
    finally:
        reset_run_base_dir(token)
    assert relativize_path("/work/proj/x/y") == "/work/proj/x/y"


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("cat /repo/a.py /repo/b/c.py", "cat a.py b/c.py"),
        ("cd /repo/src && pytest", "cd src && pytest"),
        ("ls /repo2/x /repo", "ls /repo2/x /repo"),  # siblings and the bare base untouched
        ("cat /x/repo/a.py", "cat /x/repo/a.py"),  # /repo inside a longer path
        ("grep -r foo '/repo/lib'", "grep -r foo 'lib'"),
        ("echo hi", "echo hi"),
    ],
)
def test_relativize_command(cmd: str, expected: str) -> None:
    assert relativize_command(cmd, "/repo") == expected


def test_relativize_command_with_root_base_is_a_no_op() -> None:
    assert relativize_command("cat /etc/hosts", "/") == "cat /etc/hosts"


def test_run_options_contextvar() -> None:
    assert get_run_options() is None
    opts = EngineRunOptions(model="gpt-x", reasoning="high")
    with apply_run_options(opts):
        assert get_run_options() == opts
        with apply_run_options(EngineRunOptions(model="inner")):
            assert get_run_options() == EngineRunOptions(model="inner", reasoning=None)
        assert get_run_options() is opts
    assert get_run_options() is None


@pytest.mark.anyio
async def test_contextvars_are_per_task() -> None:
    seen: dict[str, object] = {}

    async def task(name: str, base: str) -> None:
        token = set_run_base_dir(base)
        try:
            with apply_run_options(EngineRunOptions(model=name)):
                await anyio.sleep(0)
                options = get_run_options()
                seen[name] = (get_run_base_dir(), options.model if options else None)
        finally:
            reset_run_base_dir(token)

    async with anyio.create_task_group() as tg:
        tg.start_soon(task, "one", "/p1")
        tg.start_soon(task, "two", "/p2")
    assert seen == {"one": (Path("/p1"), "one"), "two": (Path("/p2"), "two")}
    assert get_run_base_dir() is None
