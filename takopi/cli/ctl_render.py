"""Human-readable tables for ``takopictl``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from takopi.cli.common import display_path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned columns separated by two spaces (``-`` for empty cells)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return lines


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def duration(seconds: Any) -> str:
    """``42s``, ``5m03s``, ``2h07m``, ``3d04h``."""
    if not isinstance(seconds, int | float):
        return "-"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def size(nbytes: Any) -> str:
    """``31.2 MiB``."""
    if not isinstance(nbytes, int):
        return "-"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def runs_table(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Runs in flight (``runs[]`` of the status schema)."""
    if not runs:
        return ["no runs in flight"]
    return table(
        ["RUN", "THREAD", "ENGINE", "CHAT", "ELAPSED", "STATE"],
        [
            [
                r["run_id"],
                r["thread"],
                r["engine"],
                r["chat"],
                duration(r["elapsed_s"]),
                r["state"],
            ]
            for r in runs
        ],
    )


def engines_table(engines: Sequence[dict[str, Any]]) -> list[str]:
    """Installed engines: load status, offered or not, worker state (``engines[]``)."""
    rows = []
    for e in engines:
        if e["worker"] is not None:
            worker = e["worker"]
        elif e["status"] == "load_error":
            worker = "none (not an engine)"
        elif not e["offered"]:
            worker = "none (not offered)"
        else:
            worker = "none (cannot run)"
        rows.append([e["id"], e["status"], worker, e["issue"]])
    return table(["ENGINE", "STATUS", "WORKER", "ISSUE"], rows)


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The whole ``takopictl status`` screen."""
    sup = doc["supervisor"]
    lock = sup["lock"]
    if not lock["path"]:
        lock_text = "-"
    elif lock["held"]:
        lock_text = f"{display_path(lock['path'])} (held by pid {lock['pid']})"
    else:
        holder = f"pid {lock['pid']}" if lock["pid"] else "not held"
        lock_text = f"{display_path(lock['path'])} ({holder})"
    lines = [
        f"takopi {sup['version']}: {sup['state']} (pid {sup['pid']}, up "
        f"{duration(sup['uptime_s'])}, {size(sup['rss_bytes'])}, cpu "
        f"{sup['cpu_percent'] if sup['cpu_percent'] is not None else '-'}%)",
        f"config:         {display_path(sup['config_path'])}",
        f"transport:      {sup['transport']}",
        f"default engine: {sup['default_engine'] or '-'}",
        f"lock:           {lock_text}",
    ]
    if sup["pending_deliveries"]:
        lines.append(f"pending deliveries: {sup['pending_deliveries']}")
    lines.append("")
    workers = doc["workers"]
    lines += table(
        ["WORKER", "KIND", "STATE", "PID", "PYTHON", "UPTIME", "RESTARTS", "RSS", "CPU%"],
        [
            [
                w["name"],
                w["kind"],
                w["state"],
                w["pid"],
                w["python_version"],
                duration(w["uptime_s"]),
                w["restarts"],
                size(w["rss_bytes"]),
                w["cpu_percent"],
            ]
            for w in workers
        ],
    )
    if doc.get("engines"):
        lines += ["", *engines_table(doc["engines"])]
    interpreters = {w["interpreter"] for w in workers if w["interpreter"]}
    details = []
    for w in workers:
        if len(interpreters) > 1 and w["interpreter"]:
            details.append(f"  {w['name']}: interpreter {w['interpreter']}")
        if w["last_exit"]:
            details.append(f"  {w['name']}: last exit {w['last_exit']}")
        if w["last_error"]:
            details.append(f"  {w['name']}: last error {w['last_error']}")
    if details:
        lines += ["", "details:", *details]
    lines += ["", f"runs in flight: {len(doc['runs'])}"]
    if doc["runs"]:
        lines += runs_table(doc["runs"])
    return lines


__all__ = ["duration", "engines_table", "runs_table", "size", "status_lines", "table"]
