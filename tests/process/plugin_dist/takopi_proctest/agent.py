"""A fake agent CLI: reads the prompt on stdin, prints JSONL events.

Prompt words: ``sleep=S`` (pause S seconds before answering), ``steps=N`` (N actions),
``answer=TEXT``, ``flood=N`` (N action lines as fast as possible), ``fail`` (exit 3).
Writes ``begin <session> <pid> <parent pid>``/``end <session>`` lines to ``$PROCTEST_LOG`` if set.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(line: str) -> None:
    path = os.environ.get("PROCTEST_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\n")


def main() -> int:
    resume = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
    prompt = sys.stdin.read()
    words = dict(w.split("=", 1) if "=" in w else (w, "1") for w in prompt.split())
    session = resume or uuid.uuid4().hex[:12]
    emit({"type": "session", "id": session})
    log(f"begin {session} {os.getpid()} {os.getppid()}")
    for i in range(int(words.get("steps", "1"))):
        emit({"type": "action", "id": f"a{i}", "title": f"step {i}"})
    for i in range(int(words.get("flood", "0"))):
        emit({"type": "action", "id": f"f{i}", "title": "flood"})
    time.sleep(float(words.get("sleep", "0")))
    if "fail" in words:
        log(f"end {session}")
        return 3
    log(f"end {session}")
    emit({"type": "done", "answer": words.get("answer", f"answer to: {prompt.strip()}")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
