"""Memory of the service, per process (USS / PSS / RSS) and in total.

Run: ``.venv/bin/python bench/bench_memory.py [idle_s] [--service]`` (``--service``: part 2
only).

Part 1 — idle worker USS against an idle interpreter that imported only ``zmq, msgpack,
anyio`` (what any worker must have), both measured in this run: a supervisor with two test
engine plugins (``scripted``, ``flood``; each ran once) and the recording test transport.

Part 2 — *idle service with one engine*, as a user runs it: ``python -m takopi.supervisor``
with the real ``telegram`` transport (against the fake Bot API on 127.0.0.1), every installed
engine allowed, and only ``codex`` on PATH (the fake codex CLI of the telegram tests). The
service's process tree (the supervisor and all its descendants) is measured in the idle
states — (a) after start-up (the fork server waits to fork the first engine worker), (b) with
one engine worker (forked) once the fork server retired (``[supervisor] helper_idle_s``, 4 s
here), (c) after the engine idle period (``engine_idle_s``, ``idle_s`` here, default 8 s)
retired the engine worker, (d) with one engine worker started fresh after that — and once
while busy, (a') right after the first answer (engine worker and fork server both there).
Target: PSS ≤ 80 MiB in the idle states. PSS splits shared pages with every process that maps
them, unrelated ones included, so it reads lower on a busy machine; the last column, PSS within
the service (``_pagemap``, needs root), counts each page once among the service's processes
only and does not depend on what else runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from _harness import REPO, cleanup, harness, wait_until
from _pagemap import group_pss

from takopi.supervisor.worker_env import start_env
from tests.support.processes import terminate

MIB = 1024 * 1024
CHAT = 1001
TARGET_PSS = 80 * MIB
HELPER_IDLE_S = 4.0


def _idle_interpreter_uss() -> int:
    base = subprocess.Popen(
        [sys.executable, "-c", "import zmq, msgpack, anyio, time; time.sleep(30)"]
    )
    time.sleep(1.5)
    uss = int(psutil.Process(base.pid).memory_full_info().uss)
    base.kill()
    base.wait()
    return uss


def _tree(root: int, names: dict[int, str]) -> list[tuple[str, psutil.Process]]:
    """The root process and every descendant, labelled by status name or process name."""
    proc = psutil.Process(root)
    rows = [("supervisor", proc)]
    for child in proc.children(recursive=True):
        try:
            label = names.get(child.pid) or f"({child.name()})"
        except psutil.Error:
            continue
        rows.append((label, child))
    return rows


def _table(title: str, rows: list[tuple[str, psutil.Process]]) -> tuple[int, int, float | None]:
    """Per-process USS/PSS/RSS and PSS within the service (see ``_pagemap``); the totals of
    PSS and in-service PSS (None when frame numbers are not readable)."""
    print(f"\n{title}")
    print(f"  {'process':26} {'USS MiB':>8} {'PSS MiB':>8} {'RSS MiB':>8} {'in-svc PSS':>10}")
    total_uss = total_pss = total_rss = 0
    group = group_pss([proc.pid for _, proc in rows])
    for name, proc in rows:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        total_uss += info.uss
        total_pss += info.pss
        total_rss += info.rss
        own = f"{group[proc.pid] / MIB:10.1f}" if group and proc.pid in group else f"{'-':>10}"
        print(
            f"  {name:26} {info.uss / MIB:8.1f} {info.pss / MIB:8.1f} {info.rss / MIB:8.1f} {own}"
        )
    in_service = sum(group.values()) if group else None
    svc = f"{in_service / MIB:10.1f}" if in_service is not None else f"{'-':>10}"
    print(
        f"  {'total (' + str(len(rows)) + ' processes)':26} {total_uss / MIB:8.1f} "
        f"{total_pss / MIB:8.1f} {total_rss / MIB:8.1f} {svc}"
    )
    return total_uss, total_pss, in_service


def part1(base_uss: int) -> None:
    chosen = ("scripted", "flood")
    h = harness()
    try:
        h.write_config(default_engine=chosen[0])
        h.start(engines=chosen, env={"TAKOPI_LOG_LEVEL": "warning"})
        for engine in chosen:  # engine workers may start on first use: run each once
            h.send(f"/{engine} hi")
        wait_until(lambda: len(h.finals()) >= len(chosen), 60)
        time.sleep(2.0)  # idle
        status = h.control("status")
        assert h.proc is not None
        names = {w["pid"]: w["name"] for w in status["workers"] if w["pid"]}
        names.update({x["pid"]: f"({x['name']})" for x in status.get("helpers", [])})
        rows = _tree(h.proc.pid, names)
        _table(f"part 1: engines {', '.join(chosen)} + recorder transport, idle", rows)
        worker_uss = [
            r[1].memory_full_info().uss
            for r in rows
            if r[0] != "supervisor" and not r[0].startswith("(")
        ]
    finally:
        cleanup(h)
    worst = max(worker_uss)
    print(f"  baseline idle interpreter USS : {base_uss / MIB:.1f} MiB")
    print(
        f"  idle worker USS (max)         : {worst / MIB:.1f} MiB  (ratio {worst / base_uss:.2f})"
    )
    print(f"  target worker USS ≤ 20 MiB    : {'met' if worst <= 20 * MIB else 'NOT met'}")


class _Service:
    """The supervisor with the telegram transport against the fake Bot API."""

    def __init__(self, base: Path, server: Any, idle_s: float) -> None:
        self.base = base
        self.server = server
        bin_dir = base / "bin"
        bin_dir.mkdir()
        codex = bin_dir / "codex"
        fake = REPO / "tests" / "telegram" / "fake_codex.py"
        codex.write_text(f"#!{sys.executable}\n" + fake.read_text())
        codex.chmod(codex.stat().st_mode | stat.S_IEXEC)
        (base / "codex-state").mkdir()
        self.config = base / "takopi.toml"
        self.config.write_text(
            "\n".join(
                [
                    'transport = "telegram"',
                    'default_engine = "codex"',
                    "[transports.telegram]",
                    f'bot_token = "{server.token}"',
                    f"chat_id = {CHAT}",
                    f'api_url = "{server.base_url}"',
                    "[supervisor]",
                    f"engine_idle_s = {idle_s}",
                    f"helper_idle_s = {HELPER_IDLE_S}",
                ]
            )
            + "\n"
        )
        # As under a plain systemd unit: no variable that could hold a secret, so the fork
        # server is forked from the supervisor (see worker_env.forkable_environment), and no
        # SSL_CERT_* override (the transport then reads the system's CA directory lazily).
        env = start_env(os.environ)
        for key in (
            "XDG_RUNTIME_DIR",
            "NOTIFY_SOCKET",
            "PYTHONPATH",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ):
            env.pop(key, None)
        env["PATH"] = f"{bin_dir}{os.pathsep}{os.path.dirname(sys.executable)}:/usr/bin:/bin"
        env["FAKE_CODEX_DIR"] = str(base / "codex-state")
        env["TAKOPI_LOG_LEVEL"] = "warning"
        env["HOME"] = str(base)
        self.log = (base / "supervisor.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "takopi.supervisor", "--config", str(self.config)],
            env=env,
            cwd=base,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_bot(self, predicate: Callable[[Any], bool], timeout: float = 60) -> Any:
        def find() -> Any:
            if self.proc.poll() is not None:
                raise AssertionError((self.base / "supervisor.log").read_text()[-3000:])
            return next((m for m in self.server.bot_messages(CHAT) if predicate(m)), None)

        return wait_until(find, timeout)

    def status(self) -> dict[str, Any]:
        from takopi.supervisor.control import request
        from takopi.supervisor.paths import resolve_paths

        sock = resolve_paths(self.config, create=False).control_socket
        return request(sock, "status", {})["result"]  # type: ignore[no-any-return]

    def names(self) -> dict[int, str]:
        status = self.status()
        names = {w["pid"]: w["name"] for w in status["workers"] if w["pid"]}
        names.update({x["pid"]: f"({x['name']})" for x in status.get("helpers", [])})
        return names

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def _verdict(totals: tuple[int, int, float | None]) -> None:
    _uss, pss, in_service = totals
    verdict = f"{'met' if pss <= TARGET_PSS else 'NOT met'} ({pss / MIB:.1f})"
    if in_service is not None:
        met = "met" if in_service <= TARGET_PSS else "NOT met"
        verdict += f"; within the service: {met} ({in_service / MIB:.1f})"
    print(f"  target PSS ≤ 80 MiB           : {verdict}")


def part2(idle_s: float) -> None:
    from tests.fakes.bot_api import BotApiServer

    server = BotApiServer(max_poll_timeout=0.5)
    server.start()
    server.add_chat(CHAT)
    base = Path(tempfile.mkdtemp(prefix="tkm-", dir="/tmp"))
    service = _Service(base, server, idle_s)

    def measure(title: str) -> tuple[int, int, float | None]:
        time.sleep(1.0)
        return _table(title, _tree(service.proc.pid, service.names()))

    def answered(text: str) -> None:
        user = server.send_user_message(CHAT, text)
        service.wait_bot(
            lambda m: m.reply_to_message_id == user["message_id"] and m.text.startswith("done")
        )

    def settle(what: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> None:
        try:
            wait_until(lambda: done(service.status()), timeout)
        except AssertionError:
            print(f"  ({what} still there after {timeout:g} s)")

    def engines_retired(status: dict[str, Any]) -> bool:
        return all(w["pid"] is None for w in status["workers"] if w["kind"] == "engine")

    try:
        ready = service.wait_bot(lambda m: "takopi is ready" in m.text)
        print("\npart 2: telegram + every installed engine allowed, only codex on PATH")
        print("  startup message: " + " | ".join(ready.text.splitlines()[2:4]))
        _verdict(measure("  (a) idle after start-up (the fork server waits for an engine)"))
        answered("hello")
        measure("  (a') right after one answered message (engine forked, fork server there)")
        settle("fork server", lambda status: not status["helpers"], HELPER_IDLE_S + 30)
        _verdict(
            measure(
                f"  (b) idle service with one engine (fork server retired, {HELPER_IDLE_S:g} s)"
            )
        )
        settle("engine worker", engines_retired, idle_s + 30)
        _verdict(measure(f"  (c) after the engine idle period ({idle_s:g} s)"))
        answered("hello again")
        _verdict(measure("  (d) idle service with one engine, its worker started fresh"))
    finally:
        service.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--service"]
    idle_s = float(args[0]) if args else 8.0
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "--service" not in sys.argv:
        part1(_idle_interpreter_uss())
    part2(idle_s)


if __name__ == "__main__":
    main()
