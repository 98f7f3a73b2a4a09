"""A scripted stand-in for an agent CLI, used by the built-in ``demo`` engine.

It behaves like a tiny headless agent: reads the prompt on stdin, prints a JSONL event stream
(session, steps, answer, end) with short pauses so progress is visible, and keeps each session's
prompts on disk so ``demo resume <id>`` continues a thread. It never calls a model.

Usage: ``python -m takopi.runners.demo_agent [--resume ID] [--delay SECONDS]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path


def _sessions_dir() -> Path:
    base = os.environ.get("TAKOPI_DEMO_HOME")
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "takopi-demo" / "sessions"


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _load_history(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    prompts = data.get("prompts") if isinstance(data, dict) else None
    return [p for p in prompts if isinstance(p, str)] if isinstance(prompts, list) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="takopi-demo-agent")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--delay", type=float, default=0.4)
    args = parser.parse_args(argv)

    prompt = sys.stdin.read().strip()
    session_id = args.resume or uuid.uuid4().hex[:12]
    sessions = _sessions_dir()
    sessions.mkdir(parents=True, exist_ok=True)
    path = sessions / f"{session_id}.json"
    history = _load_history(path) if args.resume else []
    if args.resume and not path.exists():
        _emit({"type": "session", "id": session_id})
        _emit({"type": "end", "ok": False, "error": f"unknown demo session {session_id!r}"})
        return 1

    _emit({"type": "session", "id": session_id, "cwd": os.getcwd()})
    steps = [
        ("read", "note", "reading your prompt"),
        ("look", "command", "ls"),
        ("think", "note", "planning an answer (no model is called: this is the demo engine)"),
    ]
    for step_id, kind, title in steps:
        _emit({"type": "step", "id": step_id, "kind": kind, "title": title, "status": "started"})
        time.sleep(args.delay)
        done: dict[str, object] = {"type": "step", "id": step_id, "kind": kind, "title": title}
        if kind == "command":  # really run it, so the action's exit code is genuine
            proc = subprocess.run(title, shell=True, capture_output=True, check=False)
            done["exit_code"] = proc.returncode
        _emit({**done, "status": "done"})

    history.append(prompt)
    path.write_text(json.dumps({"prompts": history}), encoding="utf-8")
    lines = [
        "This is takopi's built-in **demo** engine: no agent CLI (codex, claude, opencode, pi) "
        "was found on PATH, so nothing was sent to a model.",
        "",
        f"You said: {prompt or '(empty prompt)'}",
    ]
    if len(history) > 1:
        lines.append("")
        lines.append(f"This thread has {len(history)} prompts so far:")
        lines.extend(f"{i}. {p}" for i, p in enumerate(history, 1))
    lines.append("")
    lines.append("Install an agent CLI (e.g. `npm install -g @openai/codex`) to do real work.")
    _emit({"type": "answer", "text": "\n".join(lines)})
    _emit({"type": "end", "ok": True})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
