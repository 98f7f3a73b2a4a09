"""A fake agent CLI: prompt on stdin, JSONL on stdout.

Prompt words: ``sleep=S`` (pause before answering), ``answer=TEXT``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    resume = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
    prompt = sys.stdin.read()
    words = dict(w.split("=", 1) if "=" in w else (w, "1") for w in prompt.split())
    emit({"type": "session", "id": resume or uuid.uuid4().hex[:12]})
    emit({"type": "action", "id": "a0", "title": "thinking"})
    time.sleep(float(words.get("sleep", "0")))
    emit({"type": "done", "answer": words.get("answer", f"answer to: {prompt.strip()}")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
