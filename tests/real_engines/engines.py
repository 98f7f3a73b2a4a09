"""How each real agent CLI is installed, isolated and pointed at the fake model server.

Everything here follows ``/work/shared/reference/engines-offline.md``: a temp ``HOME`` holding
each CLI's state/config, a separate work dir as cwd, the provider redirected to the fake on
127.0.0.1, and every phone-home / retry knob turned off. The same sandbox serves the tests that
go through the takopi runners (``config`` is the ``[<engine>]`` table handed to
``BACKEND.build_runner``) and the fixture recorder that drives the CLIs directly
(:func:`direct_argv`, the argv the takopi runners use).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-engines.sh"

ENGINES = ("codex", "claude", "opencode", "pi")

# npm package and pinned version per engine (keep in sync with scripts/install-engines.sh).
PINNED: dict[str, tuple[str, str]] = {
    "codex": ("@openai/codex", "0.169.0"),
    "claude": ("@anthropic-ai/claude-code", "2.1.197"),
    "opencode": ("opencode-ai", "1.18.33"),
    "pi": ("@mariozechner/pi-coding-agent", "0.73.1"),
}

FAKE_KEY = "fake-test-key"
# Environment variables kept from the caller; everything else is dropped so that no real
# credentials, proxies or XDG dirs leak into the CLIs.
_KEEP_ENV = ("LANG", "LC_ALL", "TZ")
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def engines_dir() -> Path:
    """The npm prefix the install script uses."""
    default = Path.home() / ".cache" / "takopi-tests" / "engines"
    return Path(os.environ.get("TAKOPI_ENGINES_DIR") or default)


def install_engines(timeout: float = 1800.0) -> Path:
    """Run ``scripts/install-engines.sh`` (a no-op when cached) and return the bin dir."""
    if override := os.environ.get("TAKOPI_ENGINES_BIN"):
        return Path(override)
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/install-engines.sh failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class EngineSandbox:
    """One isolated HOME + work dir for an engine, pointed at the fake at ``base_url``."""

    engine: str
    base_url: str
    root: Path
    home: Path
    work: Path
    bin_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def full_env(self) -> dict[str, str]:
        """The complete child environment (nothing inherited beyond locale)."""
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        env.update(self.env)
        return env


def _base_env(home: Path, bin_dir: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": f"{bin_dir}:{_SYSTEM_PATH}",
        "USER": "takopi-test",
        "LOGNAME": "takopi-test",
        "SHELL": "/bin/bash",
        "TERM": "dumb",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        # npm-based self-updates / plugin installs must never reach the registry.
        "npm_config_offline": "true",
        "NO_UPDATE_NOTIFIER": "1",
    }


def codex_extra_args(base_url: str) -> list[str]:
    """``[codex] extra_args`` that point codex at the fake with no phone-home."""
    provider = (
        '{name="Fake LLM",'
        f'base_url="{base_url}/v1",'
        'env_key="FAKE_API_KEY",'
        'wire_api="responses",'
        "request_max_retries=0,"
        "stream_max_retries=0}"
    )
    return [
        "-c",
        "notify=[]",
        "-c",
        "model_provider=fake",
        "-c",
        f"model_providers.fake={provider}",
        "-c",
        'model="gpt-5.5"',
        "-c",
        'approval_policy="never"',
        "-c",
        'sandbox_mode="workspace-write"',
        "-c",
        "analytics.enabled=false",
        "-c",
        "features.plugins=false",
        "-c",
        "features.unbounded_connection_retries=false",
    ]


def opencode_config(base_url: str) -> dict[str, Any]:
    """``opencode.json`` content pointing at the fake (Chat Completions)."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "model": "fake/fake-model",
        "small_model": "fake/fake-model",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake LLM",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": FAKE_KEY},
                "models": {
                    "fake-model": {"name": "Fake Model", "tool_call": True, "reasoning": True}
                },
            }
        },
    }


PI_APIS = ("openai-completions", "openai-responses", "anthropic-messages")


def prepare_engine(
    engine: str,
    base_url: str,
    root: Path,
    bin_dir: Path,
    *,
    pi_api: str = "openai-completions",
) -> EngineSandbox:
    """Create HOME/work dirs and config files under ``root`` for ``engine``.

    ``pi_api`` picks the wire pi's provider speaks (any of :data:`PI_APIS`)."""
    home = root / "home"
    work = root / "work"
    home.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = _base_env(home, bin_dir)
    config: dict[str, Any] = {}
    if engine == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)  # codex refuses to start when CODEX_HOME is missing
        env.update(CODEX_HOME=str(codex_home), FAKE_API_KEY=FAKE_KEY)
        config = {"extra_args": codex_extra_args(base_url)}
    elif engine == "claude":
        env.update(
            ANTHROPIC_BASE_URL=base_url,
            # takopi strips ANTHROPIC_API_KEY (use_api_billing=false); the token survives.
            ANTHROPIC_AUTH_TOKEN=FAKE_KEY,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_MAX_RETRIES="0",
        )
        config = {"model": "claude-fake-model"}
    elif engine == "opencode":
        cfg_path = root / "opencode.json"
        cfg_path.write_text(json.dumps(opencode_config(base_url), indent=2))
        env.update(
            OPENCODE_CONFIG=str(cfg_path),
            OPENCODE_DISABLE_AUTOUPDATE="1",
            OPENCODE_DISABLE_MODELS_FETCH="1",
            OPENCODE_DISABLE_DEFAULT_PLUGINS="1",
            OPENCODE_DISABLE_SHARE="1",
        )
        config = {"model": "fake/fake-model"}
    elif engine == "pi":
        agent_dir = home / ".pi" / "agent"
        agent_dir.mkdir(parents=True, exist_ok=True)
        models = {
            "providers": {
                "fake": {
                    # the Anthropic client appends /v1/messages itself
                    "baseUrl": base_url if pi_api == "anthropic-messages" else f"{base_url}/v1",
                    "api": pi_api,
                    "apiKey": FAKE_KEY,
                    "models": [{"id": "fake-model"}],
                }
            }
        }
        (agent_dir / "models.json").write_text(json.dumps(models, indent=2))
        settings = {"retry": {"enabled": False, "provider": {"maxRetries": 0}}}
        (agent_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        env.update(PI_OFFLINE="1", NO_COLOR="1", CI="1")
        config = {"provider": "fake", "model": "fake-model"}
    else:
        raise ValueError(f"unknown engine {engine!r}")
    return EngineSandbox(
        engine=engine,
        base_url=base_url,
        root=root,
        home=home,
        work=work,
        bin_dir=bin_dir,
        env=env,
        config=config,
    )


def pi_new_session_path(sandbox: EngineSandbox) -> Path:
    """A new pi session file path in the takopi layout (sessions/--<cwd>--/<ts>_<hex>.jsonl)."""
    cwd = str(sandbox.work).lstrip("/")
    for sep in ("/", "\\", ":"):
        cwd = cwd.replace(sep, "-")
    stamp = datetime.now(UTC).isoformat().replace(":", "-").replace(".", "-")
    return (
        sandbox.home
        / ".pi"
        / "agent"
        / "sessions"
        / f"--{cwd}--"
        / f"{stamp}_{uuid.uuid4().hex}.jsonl"
    )


def direct_argv(
    sandbox: EngineSandbox,
    prompt: str,
    resume: str | None,
    *,
    extra: list[str] | None = None,
) -> tuple[list[str], str | None]:
    """The argv (and stdin text) the takopi runner would use; for recording fixtures."""
    extra = extra or []
    cfg = sandbox.config
    if sandbox.engine == "codex":
        tail = ["resume", resume, "-"] if resume else ["-"]
        argv = [
            "codex",
            *cfg["extra_args"],
            *extra,
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--color=never",
            *tail,
        ]
        return argv, prompt
    if sandbox.engine == "claude":
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
        if resume:
            argv += ["--resume", resume]
        argv += ["--model", cfg["model"]]
        if "--allowedTools" not in extra:
            argv += ["--allowedTools", "Bash,Read,Edit,Write"]
        return [*argv, *extra, "--", prompt], None
    if sandbox.engine == "opencode":
        argv = ["opencode", "run", "--format", "json"]
        if resume:
            argv += ["--session", resume]
        argv += ["--model", cfg["model"], *extra, "--", prompt]
        return argv, None
    if sandbox.engine == "pi":
        session = resume or str(pi_new_session_path(sandbox))
        argv = [
            "pi",
            *extra,
            "--print",
            "--mode",
            "json",
            "--provider",
            cfg["provider"],
            "--model",
            cfg["model"],
            "--session",
            session,
            f" {prompt}" if prompt.startswith("-") else prompt,
        ]
        return argv, None
    raise ValueError(f"unknown engine {sandbox.engine!r}")


def live_processes(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (zombies count as gone)."""
    live = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc)
        except psutil.NoSuchProcess:
            continue
    return live
