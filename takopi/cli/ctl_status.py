"""``takopictl status`` data: the supervisor's answer turned into a stable, documented schema.

Schema (``takopictl status --json``, ``schema_version`` 1; fields are only ever added)::

    {
      "schema_version": 1,
      "supervisor": {
        "pid": int, "version": str, "state": "starting"|"running"|"reloading"|"stopping",
        "uptime_s": float, "config_path": str, "transport": str, "default_engine": str|null,
        "runtime_dir": str|null, "state_dir": str|null, "pending_deliveries": int,
        "lock": {"path": str, "pid": int|null, "held": bool},
        "rss_bytes": int|null, "cpu_percent": float|null
      },
      "workers": [{
        "id": str, "name": "<kind>:<id>", "kind": "engine"|"transport"|"command",
        "state": "starting"|"ready"|"unresponsive"|"restarting"|"quarantined"|"disabled"|"stopped"
                 |"not-started"|"retired",
        "pid": int|null, "interpreter": str|null, "python_version": str|null,
        "uptime_s": float|null, "restarts": int, "last_exit": str|null, "last_error": str|null,
        "rss_bytes": int|null, "cpu_percent": float|null
      }],
      "engines": [{
        "id": str, "status": "ok"|"bad_config"|"missing_cli"|"load_error", "issue": str|null,
        "offered": bool, "worker": <a workers[].state>|null
      }],
      "runs": [{
        "run_id": str, "thread": str, "engine": str, "transport": str|null,
        "chat": int|str|null, "message_id": int|str|null, "state": str,
        "elapsed_s": float|null, "events": int|null
      }]
    }
"""

from __future__ import annotations

import json
import time
from typing import Any

import psutil

SCHEMA_VERSION = 1

WORKER_STATES = (
    "starting",
    "ready",
    "unresponsive",
    "restarting",
    "quarantined",
    "disabled",
    "stopped",
    "not-started",
    "retired",
)
_STATE_MAP = {"backoff": "restarting", "exited": "restarting"}


def normalize_worker_state(state: Any, supervisor_state: Any) -> str:
    """The supervisor's worker state in the documented vocabulary."""
    text = str(state or "stopped")
    if text == "exited" and supervisor_state == "stopping":
        return "stopped"
    text = _STATE_MAP.get(text, text)
    return text if text in WORKER_STATES else "stopped"


def sample_processes(pids: list[int], interval: float = 0.1) -> dict[int, tuple[int, float]]:
    """``pid -> (rss bytes, cpu %)`` measured over ``interval`` (missing pids left out)."""
    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)
            procs[pid] = proc
        except (psutil.Error, ValueError):
            continue
    if procs and interval > 0:
        time.sleep(interval)
    result: dict[int, tuple[int, float]] = {}
    for pid, proc in procs.items():
        try:
            result[pid] = (proc.memory_info().rss, round(proc.cpu_percent(None), 1))
        except psutil.Error:
            continue
    return result


def _lock_info(config_path: str, supervisor_pid: Any) -> dict[str, Any]:
    from takopi.lockfile import lock_path_for

    path = lock_path_for(config_path)
    pid: int | None = None
    try:
        data = json.loads(path.read_text())
        pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    except (OSError, ValueError, AttributeError):
        pid = None
    return {"path": str(path), "pid": pid, "held": pid is not None and pid == supervisor_pid}


def build_status(
    status: dict[str, Any], runs: list[dict[str, Any]], *, sample: bool = True
) -> dict[str, Any]:
    """The documented status document from the ``status`` and ``runs`` verb answers."""
    from takopi import __version__

    sup_pid = status.get("pid")
    workers_raw = [w for w in status.get("workers") or [] if isinstance(w, dict)]
    pids = [p for p in [sup_pid, *(w.get("pid") for w in workers_raw)] if isinstance(p, int)]
    usage = sample_processes(pids) if sample else {}
    config_path = str(status.get("config_path") or "")
    sup_usage = usage.get(sup_pid) if isinstance(sup_pid, int) else None
    supervisor = {
        "pid": sup_pid,
        "version": status.get("version") or __version__,
        "state": status.get("state"),
        "uptime_s": status.get("uptime_s"),
        "config_path": config_path,
        "transport": status.get("transport"),
        "default_engine": status.get("default_engine"),
        "runtime_dir": status.get("runtime_dir"),
        "state_dir": status.get("state_dir"),
        "pending_deliveries": int(status.get("pending_deliveries") or 0),
        "lock": _lock_info(config_path, sup_pid)
        if config_path
        else {"path": None, "pid": None, "held": False},
        "rss_bytes": sup_usage[0] if sup_usage else None,
        "cpu_percent": sup_usage[1] if sup_usage else None,
    }
    workers = []
    for w in workers_raw:
        pid = w.get("pid") if isinstance(w.get("pid"), int) else None
        use = usage.get(pid) if pid is not None else None
        kind = str(w.get("kind") or "")
        plugin_id = str(w.get("id") or str(w.get("name") or "").partition(":")[2])
        workers.append(
            {
                "id": plugin_id,
                "name": str(w.get("name") or f"{kind}:{plugin_id}"),
                "kind": kind,
                "state": normalize_worker_state(w.get("state"), status.get("state")),
                "pid": pid,
                "interpreter": w.get("python_executable"),
                "python_version": w.get("python"),
                "uptime_s": w.get("uptime_s"),
                "restarts": int(w.get("restarts") or 0),
                "last_exit": w.get("last_exit"),
                "last_error": w.get("last_error"),
                "rss_bytes": use[0] if use else None,
                "cpu_percent": use[1] if use else None,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "supervisor": supervisor,
        "workers": workers,
        "engines": [
            normalize_engine(e, status.get("state"))
            for e in status.get("engines") or []
            if isinstance(e, dict)
        ],
        "runs": [normalize_run(r) for r in runs if isinstance(r, dict)],
    }


def normalize_engine(engine: dict[str, Any], supervisor_state: Any) -> dict[str, Any]:
    """One ``engines[]`` entry: an installed engine, whether the router offers it, and the
    state of its worker (null: it cannot run, so it has none)."""
    worker = engine.get("worker")
    return {
        "id": str(engine.get("id") or ""),
        "status": str(engine.get("status") or ""),
        "issue": engine.get("issue"),
        "offered": bool(engine.get("offered")),
        "worker": normalize_worker_state(worker, supervisor_state) if worker else None,
    }


def normalize_run(run: dict[str, Any]) -> dict[str, Any]:
    """One ``runs[]`` entry of the documented schema."""
    return {
        "run_id": str(run.get("run_id")),
        "thread": str(run.get("thread") or ""),
        "engine": str(run.get("engine") or ""),
        "transport": run.get("transport"),
        "chat": run.get("channel_id"),
        "message_id": run.get("message_id"),
        "state": str(run.get("state") or ""),
        "elapsed_s": run.get("age_s"),
        "events": run.get("events"),
    }


__all__ = [
    "SCHEMA_VERSION",
    "WORKER_STATES",
    "build_status",
    "normalize_engine",
    "normalize_run",
    "normalize_worker_state",
    "sample_processes",
]
