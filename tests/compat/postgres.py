"""A throwaway PostgreSQL cluster for tests (the Debian ``postgresql`` package's binaries).

``initdb`` into a fresh directory, ``postgres`` listening on 127.0.0.1 (a free port) with its
socket in that directory, trust authentication for one role. PostgreSQL refuses to run as
root, so when the tests run as root (CI) every server-side command runs as the ``postgres``
system user (``runuser``; ``setpriv`` as a fallback). Client commands use ``psql``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def postgres_bindir() -> Path:
    """Where ``initdb`` / ``postgres`` / ``psql`` live (PATH, else Debian's versioned dir)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0])
    )
    for directory in reversed(dirs):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    pytest.fail("PostgreSQL is not installed: run scripts/ci-system-deps.sh (Debian postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One cluster with database ``dbname`` owned by role ``user``."""

    def __init__(self, *, user: str = "takopi", dbname: str = "takopi") -> None:
        self.user = user
        self.dbname = dbname
        self.bindir = postgres_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="tkpg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def _server_argv(self, argv: list[str]) -> list[str]:
        if not self._as_root:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        if os.path.exists(runuser):
            return [runuser, "-u", "postgres", "--", *argv]
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]

    def start(self) -> PostgresCluster:
        os.chmod(self.base, 0o755)
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._server_argv(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._log = (self.base / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._server_argv(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.base),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            probe = self.psql("select 1", dbname="postgres", check=False)
            if probe.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"postgres did not start: {self.log()}")
            time.sleep(0.1)
        self.psql(f'create database "{self.dbname}"', dbname="postgres")
        return self

    def psql(
        self, sql: str, *, dbname: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``sql`` through psql (unaligned, tuples only); stdout holds the rows."""
        proc = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                dbname or self.dbname,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"psql failed: {sql}\n{proc.stderr}")
        return proc

    def rows(self, sql: str) -> list[list[str]]:
        out = self.psql(sql).stdout
        return [line.split("|") for line in out.splitlines() if line.strip()]

    def log(self) -> str:
        try:
            return (self.base / "postgres.log").read_text()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)


__all__ = ["PostgresCluster", "postgres_bindir"]
