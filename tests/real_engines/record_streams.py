"""Record the real CLIs' JSONL streams as tier-1 fixtures.

    .venv/bin/python -m tests.real_engines.record_streams [--out tests/fixtures/streams] [ENGINE...]

Drives each installed CLI directly, with the argv the takopi runner uses, against the fake model
server (inside a loopback-only network namespace when possible), and writes
``<engine>_<scenario>.jsonl`` (stdout verbatim, temp paths and the port scrubbed to stable
placeholders) plus ``real_streams.json`` describing every capture (prompt, argv, exit code).

Scenarios: ``new`` (plain prompt), ``resume`` (``HISTORY`` resuming ``new``), ``tool``
(``RUN: echo hi``), ``error`` (``FAIL400``), ``thinking`` (``THINK``; opencode with
``--thinking``) and, for claude, ``denied`` (``RUN: touch denied.txt`` with only ``Read``
allowed, so the tool call is refused).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.model_server import FakeModelServer
from tests.real_engines.engines import (
    ENGINES,
    PINNED,
    REPO_ROOT,
    EngineSandbox,
    direct_argv,
    install_engines,
    prepare_engine,
)
from tests.real_engines.netns import isolated_network

DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "streams"
ROOT_PLACEHOLDER = "/tmp/takopi-rec"
PORT_PLACEHOLDER = "127.0.0.1:18080"


@dataclass
class Capture:
    """One recorded CLI run."""

    name: str
    prompt: str
    argv: list[str]
    returncode: int
    stdout: str
    extra: dict[str, Any] = field(default_factory=dict)


def _session_id(engine: str, stdout: str) -> str | None:
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if engine == "codex" and data.get("type") == "thread.started":
            return str(data["thread_id"])
        if engine == "claude" and data.get("type") == "system" and data.get("session_id"):
            return str(data["session_id"])
        if engine == "opencode" and data.get("sessionID"):
            return str(data["sessionID"])
        if engine == "pi" and data.get("type") == "session":
            return str(data["id"])
    return None


def _run(sandbox: EngineSandbox, prompt: str, resume: str | None, extra: list[str]) -> Capture:
    argv, stdin = direct_argv(sandbox, prompt, resume, extra=extra)
    proc = subprocess.run(
        argv,
        cwd=sandbox.work,
        env=sandbox.full_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return Capture(
        name="", prompt=prompt, argv=argv, returncode=proc.returncode, stdout=proc.stdout
    )


def _scrub(text: str, sandbox: EngineSandbox, port: int) -> str:
    root = str(sandbox.root)
    dashed = root.lstrip("/").replace("/", "-")
    text = text.replace(root, ROOT_PLACEHOLDER)
    text = text.replace(dashed, ROOT_PLACEHOLDER.lstrip("/").replace("/", "-"))
    return text.replace(f"127.0.0.1:{port}", PORT_PLACEHOLDER)


def record_engine(engine: str, bin_dir: Path, tmp: Path) -> list[Capture]:
    """Run every scenario for one engine; return the scrubbed captures."""
    captures: list[Capture] = []
    with isolated_network(), FakeModelServer() as fake:
        sandbox = prepare_engine(engine, fake.base_url, tmp / engine, bin_dir)

        def keep(name: str, cap: Capture) -> Capture:
            cap.name = f"{engine}_{name}"
            cap.stdout = _scrub(cap.stdout, sandbox, fake.port)
            cap.argv = [_scrub(a, sandbox, fake.port) for a in cap.argv]
            captures.append(cap)
            return cap

        new = _run(sandbox, "hello there", None, [])
        session = _session_id(engine, new.stdout)
        keep("new", new)
        if session is None:
            raise RuntimeError(f"{engine}: no session id in the new-session stream")
        resumed = keep("resume", _run(sandbox, "HISTORY", session, []))
        resumed.extra["resumes"] = f"{engine}_new"
        keep("tool", _run(sandbox, "please\nRUN: echo hi", None, []))
        keep("error", _run(sandbox, "FAIL400", None, []))
        thinking_flags = ["--thinking"] if engine == "opencode" else []
        keep("thinking", _run(sandbox, "THINK\nsay hi", None, thinking_flags))
        if engine == "claude":
            denied = _run(sandbox, "RUN: touch denied.txt", None, ["--allowedTools", "Read"])
            keep("denied", denied)
    return captures


def main(argv: list[str] | None = None) -> int:
    """Record fixtures for the given engines (default: all four)."""
    parser = argparse.ArgumentParser(description="record real CLI streams as fixtures")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("engines", nargs="*", default=list(ENGINES))
    args = parser.parse_args(argv)
    bin_dir = install_engines()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "real_streams.json"
    manifest: dict[str, Any] = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    )
    with tempfile.TemporaryDirectory(prefix="takopi-rec-") as tmp:
        for engine in args.engines:
            for cap in record_engine(engine, bin_dir, Path(tmp)):
                (args.out / f"{cap.name}.jsonl").write_text(cap.stdout)
                package, version = PINNED[engine]
                manifest[cap.name] = {
                    "engine": engine,
                    "cli": f"{package}@{version}",
                    "prompt": cap.prompt,
                    "argv": cap.argv,
                    "returncode": cap.returncode,
                    **cap.extra,
                }
                print(f"{cap.name}: rc={cap.returncode} lines={len(cap.stdout.splitlines())}")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
