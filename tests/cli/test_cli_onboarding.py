"""The onboarding wizard end to end against the fake Bot API server (real HTTP on 127.0.0.1):
scripted answers in-process, and the real `takopi` binary under a pseudo-terminal."""

from __future__ import annotations

import json
import os
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from takopi.cli.engines_info import EngineInfo
from takopi.cli.onboarding import Wizard, run_onboarding
from takopi.cli.prompts import ScriptedPrompter
from takopi.cli.telegram_checks import API_URL_ENV
from tests.cli.conftest import TAKOPI, TAKOPICTL, PtyProcess, run_cli, user_writes_when_polled
from tests.fakes.bot_api import DEFAULT_TOKEN, BotApiServer

ENGINES = [
    EngineInfo("claude", "claude", False, "npm install -g @anthropic-ai/claude-code"),
    EngineInfo("codex", "codex", True, "npm install -g @openai/codex"),
    EngineInfo("pi", "pi", True, None),
]


@pytest.fixture
def api(bot_api: BotApiServer, monkeypatch: pytest.MonkeyPatch) -> BotApiServer:
    monkeypatch.setenv(API_URL_ENV, bot_api.base_url)
    return bot_api


def wizard(
    config: Path, answers: list[str], engines: list[EngineInfo] = ENGINES
) -> tuple[Wizard, ScriptedPrompter]:
    prompter = ScriptedPrompter(answers)
    return Wizard(prompter, config_path=config, engines=engines), prompter


def read(path: Path) -> dict:
    return tomllib.loads(path.read_text())


@pytest.mark.timeout(60)
def test_assistant_flow_writes_config(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / ".takopi" / "takopi.toml"
    api.send_user_message(1001, "old backlog message")  # must be drained, not captured
    thread = user_writes_when_polled(api, 1001)
    w, io = wizard(config, ["y", DEFAULT_TOKEN, "1", "2", ""])
    result = w.run(force=False)
    thread.join(5)
    assert result.saved
    assert result.chat is not None and result.chat.chat_id == 1001
    assert read(config) == {
        "transport": "telegram",
        "default_engine": "pi",
        "transports": {
            "telegram": {
                "bot_token": DEFAULT_TOKEN,
                "chat_id": 1001,
                "session_mode": "chat",
                "show_resume_line": False,
                "topics": {"enabled": False, "scope": "auto"},
            }
        },
    }
    text = "\n".join(io.transcript)
    assert "connected to @takopi_test_bot" in text
    question = io.transcript.index("how will you use takopi?")
    assert io.transcript[question + 1 : question + 4] == [
        "  assistant: assistant (ongoing chat, /new to reset)",
        "  workspace: workspace (projects + branches, i'll set those up)",
        "  handoff: handoff (reply to continue, terminal resume)",
    ]
    assert "step 3: connect chat" in io.transcript
    assert "got chat_id 1001 for private chat" in text
    assert "claude     ✗ not found — install: npm install -g @anthropic-ai/claude-code" in text
    assert "codex      ✓ installed" in text
    assert "✓ setup complete. starting takopi..." in text
    assert DEFAULT_TOKEN not in text  # only the masked form is shown
    assert "123456789...hijk" in text or "123456789..." in text


@pytest.mark.timeout(60)
def test_bad_token_retry_then_handoff(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    thread = user_writes_when_polled(api, 2002)
    w, io = wizard(
        config, ["n", "999:wrong-token-value", "", DEFAULT_TOKEN, "handoff", "codex", "y"]
    )
    assert w.run(force=False).saved
    thread.join(5)
    text = "\n".join(io.transcript)
    assert "send /newbot and follow the questions" in text
    assert "telegram did not accept that token" in text
    telegram = read(config)["transports"]["telegram"]
    assert telegram["session_mode"] == "stateless"
    assert telegram["show_resume_line"] is True
    assert telegram["chat_id"] == 2002
    assert read(config)["default_engine"] == "codex"


@pytest.mark.timeout(60)
def test_token_rejected_and_user_gives_up(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    io = ScriptedPrompter(["y", "999:wrong-token-value", "n"])
    w = Wizard(io, config_path=config, engines=ENGINES)
    assert run_onboarding_with(w, io) is False
    assert "setup cancelled." in io.transcript
    assert not config.exists()


def run_onboarding_with(w: Wizard, io: ScriptedPrompter) -> bool:
    from takopi.cli.prompts import SetupAborted

    try:
        return w.run(force=False).saved
    except SetupAborted:
        io.echo("setup cancelled.")
        return False


@pytest.mark.timeout(60)
def test_workspace_topics_invalid_then_switch_to_assistant(
    api: BotApiServer, tmp_path: Path
) -> None:
    config = tmp_path / "takopi.toml"
    api.add_chat(-1005, is_forum=True, title="team")
    thread = user_writes_when_polled(api, -1005, "hello bot", user_id=77)
    w, io = wizard(config, ["y", DEFAULT_TOKEN, "workspace", "2", "1", "y"])
    result = w.run(force=False)
    thread.join(5)
    text = "\n".join(io.transcript)
    assert "got chat_id -1005 for forum supergroup" in text
    assert "the bot must be an admin with 'manage topics' in chat -1005" in text
    assert result.workflow is not None and result.workflow.id == "assistant"
    telegram = read(config)["transports"]["telegram"]
    assert telegram["chat_id"] == -1005
    assert telegram["topics"]["enabled"] is False


@pytest.mark.timeout(60)
def test_workspace_with_admin_bot_enables_topics(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    api.add_chat(-1006, is_forum=True, title="team")
    api.set_member(-1006, api.bot_id, "administrator", can_manage_topics=True)
    thread = user_writes_when_polled(api, -1006, "hi", user_id=78)
    w, io = wizard(config, ["y", DEFAULT_TOKEN, "2", "", "y"])
    assert w.run(force=False).saved
    thread.join(5)
    assert "topics: ok" in io.transcript
    telegram = read(config)["transports"]["telegram"]
    assert telegram["topics"] == {"enabled": True, "scope": "auto"}
    assert telegram["session_mode"] == "chat"


@pytest.mark.timeout(60)
def test_force_merges_into_existing_config(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    config.write_text(
        'bot_token = "legacy"\nchat_id = 1\nwatch_config = true\n'
        '[projects.site]\npath = "/srv/site"\n[codex]\nprofile = "x"\n'
    )
    w, _ = wizard(config, ["y"])
    # Not forced: an existing config is left alone.
    assert w.run(force=False).saved is False
    thread = user_writes_when_polled(api, 1003)
    w, io = wizard(config, ["y", "y", DEFAULT_TOKEN, "1", "codex", "y"])
    assert w.run(force=True).saved
    thread.join(5)
    assert any("update existing config at" in line for line in io.transcript)
    data = read(config)
    assert "bot_token" not in data and "chat_id" not in data
    assert data["watch_config"] is True
    assert data["projects"] == {"site": {"path": "/srv/site"}}
    assert data["codex"] == {"profile": "x"}
    assert data["transports"]["telegram"]["chat_id"] == 1003


@pytest.mark.timeout(60)
def test_malformed_config_is_backed_up(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    config.write_text("this = = broken\n")
    thread = user_writes_when_polled(api, 1004)
    w, io = wizard(config, ["y", "y", DEFAULT_TOKEN, "1", "1", "y"])
    assert w.run(force=True).saved
    thread.join(5)
    assert (tmp_path / "takopi.toml.bak").read_text() == "this = = broken\n"
    assert read(config)["transports"]["telegram"]["chat_id"] == 1004
    assert any("takopi.toml.bak" in line for line in io.transcript)


@pytest.mark.timeout(60)
def test_no_engine_installed_save_anyway(api: BotApiServer, tmp_path: Path) -> None:
    none = [EngineInfo("codex", "codex", False, "npm install -g @openai/codex")]
    config = tmp_path / "takopi.toml"
    thread = user_writes_when_polled(api, 1008)
    w, _ = wizard(config, ["y", DEFAULT_TOKEN, "1", "", ""], engines=none)
    from takopi.cli.prompts import SetupAborted

    with pytest.raises(SetupAborted):  # "save config anyway?" defaults to No
        w.run(force=False)
    thread.join(5)
    assert not config.exists()
    thread = user_writes_when_polled(api, 1008)
    w, _ = wizard(config, ["y", DEFAULT_TOKEN, "1", "y", "y"], engines=none)
    assert w.run(force=False).saved
    thread.join(5)
    assert "default_engine" not in read(config)


def test_ctrl_c_cancels_without_writing(api: BotApiServer, tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    io = ScriptedPrompter(["\x03"])
    assert run_onboarding(io, config_path=config, force=False) is False
    assert io.transcript[-1] == "setup cancelled."
    assert not config.exists()


# --------------------------------------------------------------------------- real terminal


@pytest.fixture
def fake_codex(tmp_path: Path) -> Iterator[Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    codex = bindir / "codex"
    codex.write_text("#!/bin/sh\nexit 0\n")
    codex.chmod(0o755)
    yield bindir


@pytest.mark.timeout(120)
def test_first_run_on_a_terminal_onboards_then_starts(
    bot_api: BotApiServer, fake_codex: Path, cli_env: dict[str, str], home: Path
) -> None:
    """`takopi` with no config on a real pseudo-terminal: the wizard runs, saves, and takopi
    starts with the new config (the bot greets the captured chat)."""
    env = dict(cli_env)
    env.update(
        PATH=f"{fake_codex}{os.pathsep}{env['PATH']}",
        PYTHONPATH="",
        **{API_URL_ENV: bot_api.base_url},
    )
    term = PtyProcess([TAKOPI], env, cwd=home)
    try:
        term.expect("do you already have a bot token from @BotFather? [Y/n]")
        term.sendline("")
        term.expect("paste your bot token:")
        term.sendline(DEFAULT_TOKEN)
        term.expect("connected to @takopi_test_bot")
        step2 = term.expect("choose a number [1]:")
        # the reference's question and labels, after a plain-text preview of each workflow
        assert (
            "how will you use takopi?\r\n"
            "  1) assistant (ongoing chat, /new to reset)\r\n"
            "  2) workspace (projects + branches, i'll set those up)\r\n"
            "  3) handoff (reply to continue, terminal resume)\r\n"
        ) in step2
        previews = step2.split("step 2: pick your workflow", 1)[1]
        assert (
            previews.index("assistant: one ongoing chat")
            < previews.index("workspace: a forum group")
            < previews.index("handoff: every message starts a new run")
        )
        term.sendline("3")  # handoff
        polled = user_writes_when_polled(bot_api, 1001)
        step3 = term.expect("waiting for your message...")
        assert "step 3: connect chat\r\n" in step3
        term.expect("got chat_id 1001 for private chat")
        polled.join(5)
        table = term.expect("choose a number [1]:")
        assert "codex      ✓ installed" in table
        assert "claude     ✗ not found" in table
        term.sendline("1")
        term.expect("save config to ~/.takopi/takopi.toml? [Y/n]")
        term.sendline("y")
        term.expect("✓ setup complete. starting takopi...")
        data = tomllib.loads((home / ".takopi" / "takopi.toml").read_text())
        assert data["transports"]["telegram"]["chat_id"] == 1001
        assert data["transports"]["telegram"]["session_mode"] == "stateless"
        assert data["default_engine"] == "codex"
        assert DEFAULT_TOKEN not in term.output  # the token prompt does not echo
        greeting = bot_api.wait_for(
            lambda: [m for m in bot_api.bot_messages(1001) if "takopi is ready" in m.text],
            timeout=60,
        )
        assert "codex" in greeting[0].text
        status = run_cli([TAKOPICTL, "status", "--json"], env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["supervisor"]["transport"] == "telegram"
        busy = run_cli([TAKOPI, "chat-id"], env)  # would fight the running takopi for updates
        assert busy.returncode == 1
        assert "reads this bot's updates; stop it first" in busy.stderr
        term.proc.send_signal(signal.SIGTERM)
        assert term.wait(60) == 0
    finally:
        term.close()


@pytest.mark.timeout(60)
def test_invalid_config_on_a_terminal_asks_before_onboarding(
    cli_env: dict[str, str], home: Path
) -> None:
    config = home / ".takopi" / "takopi.toml"
    config.parent.mkdir()
    config.write_text('transport = "telegram"\n[transports.telegram]\nbot_token = "x"\n')
    term = PtyProcess([TAKOPI], cli_env, cwd=home)
    try:
        term.expect(
            "config at ~/.takopi/takopi.toml is missing/invalid for telegram, "
            "run onboarding now? [y/N]"
        )
        term.sendline("")
        term.expect("error: invalid takopi config at ~/.takopi/takopi.toml")
        assert term.wait(30) == 1
    finally:
        term.close()
    assert "chat_id" not in config.read_text()


def test_non_interactive_errors(cli_env: dict[str, str], home: Path) -> None:
    missing = run_cli([TAKOPI], cli_env, input="")
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("error: missing takopi config at ~/.takopi/takopi.toml")

    onboard = run_cli([TAKOPI, "--onboard"], cli_env, input="")
    assert onboard.returncode == 1
    assert "error: --onboard requires a TTY" in onboard.stderr

    empty = run_cli([TAKOPI, "--transport", ""], cli_env, input="")
    assert empty.returncode == 1
    assert "error: Invalid --transport; expected a non-empty string." in empty.stderr

    config = home / ".takopi" / "takopi.toml"
    config.parent.mkdir()
    config.write_text('[transports.telegram]\nbot_token = "x"\n')
    invalid = run_cli([TAKOPI], cli_env, input="")
    assert invalid.returncode == 1
    assert "error: invalid takopi config at ~/.takopi/takopi.toml" in invalid.stderr
    assert "chat_id" in invalid.stderr
    for result in (missing, onboard, empty, invalid):
        assert "Traceback" not in result.stderr
