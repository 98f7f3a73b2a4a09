"""A real supervisor subprocess driving the recording test transport (``recorder`` from
``tests/process/plugin_dist``): config, start/stop, the control socket, ``takopictl``, the
transport's inbox and outbox. Used by the process tests, the compat suite and the benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from takopi.supervisor.control import request
from takopi.supervisor.paths import resolve_paths
from takopi.supervisor.worker_env import forkable_environment
from tests.support.processes import MARK, assert_gone, kill_marked, terminate
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIST = REPO / "tests" / "process" / "plugin_dist"
TAKOPICTL = str(Path(sys.executable).with_name("takopictl"))


class SupervisorHarness:
    """A supervisor subprocess driving the ``recorder`` transport."""

    def __init__(self, base: Path, mark: str) -> None:
        self.base = base
        self.mark = mark
        self.config_path = base / "takopi.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "supervisor.log"
        self.agent_log = base / "agent.log"
        self._seq = 0

    def write_config(
        self,
        *,
        transport: str = "recorder",
        default_engine: str = "scripted",
        extra: str = "",
        recorder: str = "",
    ) -> None:
        """``extra`` goes before the transport tables, ``recorder`` into ``[transports.recorder]``."""
        self.config_path.write_text(
            f'transport = "{transport}"\n'
            f'default_engine = "{default_engine}"\n'
            f"{extra}\n"
            "[transports.recorder]\n"
            f'dir = "{self.base}"\n'
            f"{recorder}\n"
            "[transports.recorder2]\n"
            f'dir = "{self.base}"\n'
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("NOTIFY_SOCKET", None)
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_DIST), str(REPO)])
        env[MARK] = self.mark
        env["PROCTEST_LOG"] = str(self.agent_log)
        env["TAKOPI_LOG_LEVEL"] = env.get("TAKOPI_LOG_LEVEL", "info")
        return env

    def start(
        self,
        *,
        engines: tuple[str, ...] = ("scripted",),
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
        secret_free_env: bool = False,
        python_flags: tuple[str, ...] = (),
    ) -> None:
        """Start the supervisor (``secret_free_env``: with only the variables of :meth:`env`
        that :func:`~takopi.supervisor.worker_env.forkable_environment` accepts, as under a
        plain systemd unit, so its fork server is forked from it; ``python_flags`` go before
        ``-m``). Its cwd is :attr:`base`."""
        if not self.config_path.exists():
            self.write_config()
        argv = [sys.executable, *python_flags, "-m", "takopi.supervisor"]
        argv += ["--config", str(self.config_path)]
        for engine in engines:
            argv += ["--engine", engine]
        argv += list(args)
        full_env = self.env()
        if secret_free_env:
            full_env = {k: v for k, v in full_env.items() if forkable_environment({k: v})}
        full_env.update(env or {})
        self.log_fh = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, env=full_env, stdout=self.log_fh, stderr=subprocess.STDOUT, cwd=self.base
        )
        if wait_ready:
            self.wait_ready()

    @property
    def control_socket(self) -> Path:
        return resolve_paths(self.config_path, create=False).control_socket

    def control(self, verb: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        response = request(self.control_socket, verb, args)
        assert response["ok"], response
        return response["result"]  # type: ignore[no-any-return]

    def try_status(self) -> dict[str, Any] | None:
        try:
            return self.control("status")
        except (OSError, AssertionError, ValueError):
            return None

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"supervisor exited {self.proc.returncode}: {self.log()}")
            status = self.try_status()
            if status is None:
                return None
            transport = [w for w in status["workers"] if w["kind"] == "transport"]
            if transport and transport[0]["state"] == "ready" and self.outbox_ops("ready"):
                return status
            return None

        return wait_until(ready, timeout)  # type: ignore[no-any-return]

    def worker(self, name: str) -> dict[str, Any]:
        status = self.control("status")
        return next(w for w in status["workers"] if w["name"] == name)

    def warm_engine(self, engine: str = "scripted", prompt: str = "warm-up") -> dict[str, Any]:
        """Bring ``engine``'s worker up the way a user does — one run on it (engine workers
        start on first use) — and return its status row once ready. The run's final reply is
        in :meth:`finals` (its text holds ``prompt``'s answer, ``warm-up`` by default)."""
        before = len(self.finals())
        self.send(f"/{engine} {prompt} answer={prompt}")
        wait_until(lambda: len(self.finals()) > before, 60)
        return wait_until(  # type: ignore[no-any-return]
            lambda: (w := self.worker(f"engine:{engine}"))["state"] == "ready" and w["pid"] and w
        )

    def send(self, text: str, *, transport: str = "recorder", **fields: Any) -> int:
        self._seq += 1
        inbox = self.base / f"inbox-{transport}"
        inbox.mkdir(parents=True, exist_ok=True)
        item = {"op": "message", "channel_id": 1, "message_id": self._seq, "text": text, **fields}
        tmp = inbox / f".{self._seq:06d}.tmp"
        tmp.write_text(json.dumps(item))
        tmp.rename(inbox / f"{time.time_ns()}-{self._seq:06d}.json")
        return self._seq

    def outbox(self, transport: str = "recorder") -> list[dict[str, Any]]:
        path = self.base / f"outbox-{transport}.jsonl"
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records

    def outbox_ops(self, op: str, transport: str = "recorder") -> list[dict[str, Any]]:
        return [r for r in self.outbox(transport) if r.get("op") == op]

    def finals(self, transport: str = "recorder") -> list[dict[str, Any]]:
        """Terminal replies: final sends (done/error/cancelled) and journal deliveries."""
        out = []
        for r in self.outbox(transport):
            text = str(r.get("text") or "")
            if r.get("op") == "delivery" or (
                r.get("op") in ("send", "edit")
                and text.split(" ", 1)[0].strip("`")
                in (
                    "done",
                    "error",
                    "cancelled",
                )
            ):
                out.append(r)
        return out

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        return self.proc.returncode

    def kill_all(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        kill_marked(self.mark)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``takopictl --config <ours> ARGS`` as an operator would."""
        return subprocess.run(
            [TAKOPICTL, "--config", str(self.config_path), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ctl_json(self, *args: str) -> Any:
        """``takopictl ARGS --json``'s document (the command must succeed)."""
        result = self.ctl(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def new_harness(prefix: str = "tkp") -> SupervisorHarness:
    """A harness in a fresh short directory under /tmp (ipc paths are length-limited)."""
    base = Path("/tmp") / f"{prefix}-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    return SupervisorHarness(base, uuid.uuid4().hex)


def assert_no_leftovers(harness: SupervisorHarness, timeout: float = 5.0) -> None:
    """Every process carrying the test's marker (workers, agent CLIs) is gone."""
    assert_gone(harness.mark, timeout)


__all__ = [
    "PLUGIN_DIST",
    "REPO",
    "TAKOPICTL",
    "SupervisorHarness",
    "assert_no_leftovers",
    "new_harness",
]
