"""A scripted stand-in for the ``codex`` CLI (installed on PATH as ``codex`` by the tests).

Reads the prompt on stdin and prints codex JSONL. Behaviour by prompt keyword:

- ``wait <name>``: block until ``$FAKE_CODEX_DIR/<name>`` exists (a gate the test opens);
- ``sleep <seconds>``: a long-running command action;
- ``long <n>``: answer with ``n`` characters of Markdown;
- ``fail``: exit 3 without a turn.completed event;
- anything else: answer ``ok: <prompt>``.

Every invocation appends ``{"pid", "pgid", "argv", "prompt", "resume"}`` to
``$FAKE_CODEX_DIR/calls.jsonl``.
"""

import json
import os
import sys
import time
import uuid


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def long_answer(n):
    para = "Lorem ipsum **dolor** sit amet, `consectetur` adipiscing elit. " * 6
    out = []
    total = 0
    i = 0
    while total < n:
        i += 1
        chunk = f"Paragraph {i}: {para.strip()}"
        if i % 5 == 0:
            chunk = f"```python\nprint({i})\n" + "x = 1\n" * 10 + "```"
        out.append(chunk)
        total += len(chunk) + 2
    return "\n\n".join(out)[:n]


def main():
    state_dir = os.environ["FAKE_CODEX_DIR"]
    argv = sys.argv[1:]
    resume = None
    if "resume" in argv:
        resume = argv[argv.index("resume") + 1]
    prompt = sys.stdin.read().strip()
    with open(os.path.join(state_dir, "calls.jsonl"), "a") as f:
        f.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "pgid": os.getpgid(0),
                    "argv": argv,
                    "prompt": prompt,
                    "resume": resume,
                    "cwd": os.getcwd(),
                }
            )
            + "\n"
        )
    thread = resume or f"thread-{uuid.uuid4().hex[:12]}"
    emit({"type": "thread.started", "thread_id": thread})
    emit({"type": "turn.started"})
    words = prompt.split()
    if words[:1] == ["fail"]:
        sys.exit(3)
    if words[:1] == ["wait"] and len(words) > 1:
        emit(
            {
                "type": "item.started",
                "item": {
                    "id": "item_w",
                    "type": "command_execution",
                    "command": f"wait {words[1]}",
                    "aggregated_output": "",
                    "exit_code": None,
                    "status": "in_progress",
                },
            }
        )
        gate = os.path.join(state_dir, words[1])
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.02)
        emit(
            {
                "type": "item.completed",
                "item": {
                    "id": "item_w",
                    "type": "command_execution",
                    "command": f"wait {words[1]}",
                    "aggregated_output": "",
                    "exit_code": 0,
                    "status": "completed",
                },
            }
        )
    if words[:1] == ["sleep"] and len(words) > 1:
        emit(
            {
                "type": "item.started",
                "item": {
                    "id": "item_s",
                    "type": "command_execution",
                    "command": f"sleep {words[1]}",
                    "aggregated_output": "",
                    "exit_code": None,
                    "status": "in_progress",
                },
            }
        )
        time.sleep(float(words[1]))
    if words[:1] == ["long"] and len(words) > 1:
        answer = long_answer(int(words[1]))
    else:
        answer = f"ok: {prompt}"
        if resume:
            answer += f" (resumed {resume})"
    emit(
        {
            "type": "item.completed",
            "item": {"id": "item_a", "type": "agent_message", "text": answer},
        }
    )
    emit(
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 1},
        }
    )


if __name__ == "__main__":
    main()
