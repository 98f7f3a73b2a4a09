"""Lockfile semantics with real second processes (core-config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from takopi.lockfile import LockError, acquire_lock, lock_path_for, token_fingerprint

HOLDER = textwrap.dedent(
    """
    import sys, time
    from takopi.lockfile import acquire_lock, LockError
    try:
        handle = acquire_lock(sys.argv[1], sys.argv[2])
    except LockError as exc:
        print("locked:", exc, "|", exc.hint, flush=True)
        sys.exit(3)
    print("acquired", flush=True)
    sys.stdin.readline()  # hold until told to go
    handle.release()
    print("released", flush=True)
    """
)


def _spawn(config: Path, token: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(config), token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    config = tmp_path / "takopi.toml"
    proc = _spawn(config, "123:token-A")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "acquired"
    yield config, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_fingerprint_and_path(tmp_path: Path) -> None:
    assert token_fingerprint("abc") == "ba7816bf8f"
    assert lock_path_for(tmp_path / "takopi.toml") == tmp_path / "takopi.lock"


@pytest.mark.timeout(60)
def test_same_token_is_refused_while_holder_lives(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    config, proc = holder
    lock = config.with_suffix(".lock")
    assert json.loads(lock.read_text()) == {
        "pid": proc.pid,
        "token_fingerprint": token_fingerprint("123:token-A"),
    }
    with pytest.raises(LockError) as info:
        acquire_lock(config, "123:token-A")
    assert str(info.value) == "already running"
    assert info.value.hint == f"remove {lock} if stale"
    assert info.value.pid == proc.pid
    # an unknown token (no fingerprint) is refused too
    with pytest.raises(LockError):
        acquire_lock(config, None)
    # a second real process sees the same
    other = subprocess.run(
        [sys.executable, "-c", HOLDER, str(config), "123:token-A"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.returncode == 3
    assert other.stdout.strip() == f"locked: already running | remove {lock} if stale"


@pytest.mark.timeout(60)
def test_different_token_takes_over(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    config, proc = holder
    handle = acquire_lock(config, "999:token-B")
    lock = config.with_suffix(".lock")
    assert json.loads(lock.read_text()) == {
        "pid": os.getpid(),
        "token_fingerprint": token_fingerprint("999:token-B"),
    }
    # the old holder releasing must not delete the new owner's lock
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    assert lock.exists()
    handle.release()
    assert not lock.exists()
    handle.release()  # idempotent


@pytest.mark.timeout(60)
def test_dead_pid_is_replaced(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    config, proc = holder
    proc.kill()
    proc.wait(timeout=10)
    with acquire_lock(config, "123:token-A") as handle:
        assert handle.pid == os.getpid()
        data = json.loads(config.with_suffix(".lock").read_text())
        assert data["pid"] == os.getpid()
    assert not config.with_suffix(".lock").exists()


@pytest.mark.parametrize(
    "content", ["", "not json", "[1, 2]", '{"pid": "abc"}', '{"pid": true}', "{\x00"]
)
def test_garbage_lock_file_is_replaced(tmp_path: Path, content: str) -> None:
    config = tmp_path / "takopi.toml"
    config.with_suffix(".lock").write_text(content)
    handle = acquire_lock(config, "t")
    assert json.loads(config.with_suffix(".lock").read_text()) == {
        "pid": os.getpid(),
        "token_fingerprint": token_fingerprint("t"),
    }
    handle.release()


def test_release_removes_and_reacquire_works(tmp_path: Path) -> None:
    config = tmp_path / "sub" / "takopi.toml"
    handle = acquire_lock(config, "t")
    with pytest.raises(LockError):
        acquire_lock(config, "t")  # this very process is alive
    handle.release()
    acquire_lock(config, "t").release()
    assert list((tmp_path / "sub").iterdir()) == []


def test_hint_uses_home_relative_path() -> None:
    error = LockError(Path.home() / ".takopi" / "takopi.lock", 1)
    assert str(error) == "already running"
    assert error.hint == "remove ~/.takopi/takopi.lock if stale"
