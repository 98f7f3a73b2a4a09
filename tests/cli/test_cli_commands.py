"""`takopi` subcommands: --version, engine subcommands, init, chat-id, doctor, plugins, and
the console transport with no config at all."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from takopi.cli.main import create_app, discover_engine_ids
from tests.cli.conftest import PLUGIN_DIST, TAKOPI, run_cli, user_writes_when_polled
from tests.fakes.bot_api import DEFAULT_TOKEN, BotApiServer


def read(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_version_and_engine_subcommands(cli_env: dict[str, str]) -> None:
    from takopi import __version__

    version = run_cli([TAKOPI, "--version"], cli_env)
    assert (version.returncode, version.stdout) == (0, f"{__version__}\n")
    helptext = run_cli([TAKOPI, "--help"], cli_env)
    assert helptext.returncode == 0
    for engine in ("codex", "claude", "opencode", "pi", "clitest"):
        assert f"Run with the {engine} engine." in helptext.stdout
    assert "Docs: https://takopi.dev/" in helptext.stdout
    engine_help = run_cli([TAKOPI, "codex", "--help"], cli_env)
    assert engine_help.returncode == 0
    assert "--final-notify / --no-final-notify" in engine_help.stdout
    assert "--version" not in engine_help.stdout
    assert "engine-id" not in engine_help.stdout and "engine_id" not in engine_help.stdout


def test_engine_subcommands_follow_the_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_DIST))
    config = tmp_path / "takopi.toml"
    config.write_text('[plugins]\nenabled = ["some-other-dist"]\n')
    ids = discover_engine_ids(config)
    assert "clitest" not in ids  # test dist not allowed
    assert "codex" in ids  # takopi's own engines are always allowed
    config.write_text('[plugins]\nenabled = ["takopi-clitest"]\n')
    assert "clitest" in discover_engine_ids(config)
    app = create_app(["codex", "config"])  # an engine named like a builtin is skipped
    assert app.commands["config"].help == "Show or edit the config file."


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_init_registers_the_repo(tmp_path: Path, cli_env: dict[str, str]) -> None:
    repo = tmp_path / "My-Repo.git"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "trunk")
    _git(
        repo,
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    (repo / "sub").mkdir()
    config = tmp_path / "takopi.toml"
    config.write_text('default_engine = "claude"\n')
    result = run_cli(
        [TAKOPI, "init", "--default", "--config-path", str(config)],
        cli_env,
        input="\n",
        cwd=repo / "sub",
    )
    assert result.returncode == 0, result.stderr
    assert f"saved project 'My-Repo' to {config}" in result.stdout
    data = read(config)
    assert data["projects"]["My-Repo"] == {
        "path": str(repo.resolve()),
        "worktrees_dir": ".worktrees",
        "default_engine": "claude",
        "worktree_base": "trunk",
    }
    assert data["default_project"] == "My-Repo"

    declined = run_cli(
        [TAKOPI, "init", "my-repo", "--config-path", str(config)], cli_env, input="n\n", cwd=repo
    )
    assert declined.returncode == 1
    assert "project 'My-Repo' already exists, overwrite?" in declined.stdout
    overwritten = run_cli(
        [TAKOPI, "init", "my-repo", "--config-path", str(config)], cli_env, input="y\n", cwd=repo
    )
    assert overwritten.returncode == 0, overwritten.stderr
    assert list(read(config)["projects"]) == ["my-repo"]


@pytest.mark.parametrize(
    ("alias", "error"),
    [
        ("codex", "error: Invalid project alias 'codex'; aliases must not match engine ids."),
        ("clitest", "error: Invalid project alias 'clitest'; aliases must not match engine ids."),
        (
            "Cancel",
            "error: Invalid project alias 'Cancel'; aliases must not match reserved commands.",
        ),
        ("  ", "error: project alias cannot be empty"),
    ],
)
def test_init_rejects_reserved_aliases(
    tmp_path: Path, cli_env: dict[str, str], alias: str, error: str
) -> None:
    """The reference's texts (behavior.md Part 2 §D)."""
    config = tmp_path / "takopi.toml"
    result = run_cli([TAKOPI, "init", alias, "--config-path", str(config)], cli_env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == error
    assert not config.exists()


@pytest.mark.timeout(60)
def test_chat_id_prints_and_saves(
    bot_api: BotApiServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "takopi.toml"
    config.write_text(
        "[transports.telegram]\n"
        f'bot_token = "{DEFAULT_TOKEN}"\nchat_id = 1\napi_url = "{bot_api.base_url}"\n'
        '[projects.Site]\npath = "/srv/site"\n'
    )
    bot_api.send_user_message(555, "stale backlog")
    polled = user_writes_when_polled(bot_api, -100777, "/start", user_id=9)
    result = run_cli(
        [TAKOPI, "chat-id", "--project", "site", "--config-path", str(config)], cli_env, timeout=50
    )
    polled.join(5)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "send /start to @takopi_test_bot in the chat you want takopi to use (private chat or group)",
        "chat_id = -100777",
        "updated projects.Site.chat_id = -100777",
    ]
    assert read(config)["projects"]["Site"]["chat_id"] == -100777

    unknown = run_cli(
        [TAKOPI, "chat-id", "--project", "nope", "--config-path", str(config)], cli_env
    )
    assert unknown.returncode == 1
    assert "Unknown project 'nope'; run `takopi init nope` first." in unknown.stderr

    bad = run_cli([TAKOPI, "chat-id", "--token", "1:wrong", "--config-path", str(config)], cli_env)
    assert bad.returncode == 1
    assert "getMe failed" in bad.stderr
    assert "1:wrong" not in bad.stdout + bad.stderr


def _telegram_config(path: Path, api_url: str, extra: str = "", chat_id: int = 1001) -> None:
    path.write_text(
        "[transports.telegram]\n"
        f'bot_token = "{DEFAULT_TOKEN}"\nchat_id = {chat_id}\napi_url = "{api_url}"\n' + extra
    )


@pytest.mark.timeout(60)
def test_doctor_ok_and_warnings(
    bot_api: BotApiServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    bot_api.add_chat(1001)
    config = tmp_path / "takopi.toml"
    _telegram_config(config, bot_api.base_url, "[transports.telegram.files]\nenabled = true\n")
    result = run_cli([TAKOPI, "doctor", "--config-path", str(config)], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "takopi doctor",
        "- telegram token: ok (@takopi_test_bot)",
        "- chat_id: ok (private (1001))",
        "- topics: ok (disabled)",
        "- file transfer: warning (enabled for all users)",
        "- voice transcription: ok (disabled)",
    ]
    # topics in a forum where the bot may manage them
    bot_api.add_chat(-1010, is_forum=True)
    bot_api.set_member(-1010, bot_api.bot_id, "administrator", can_manage_topics=True)
    _telegram_config(
        config, bot_api.base_url, "[transports.telegram.topics]\nenabled = true\n", chat_id=-1010
    )
    forum = run_cli([TAKOPI, "doctor", "--config-path", str(config)], cli_env)
    assert forum.returncode == 0, forum.stdout + forum.stderr
    assert forum.stdout.splitlines()[2:4] == [
        "- chat_id: ok (supergroup (-1010))",
        "- topics: ok (scope=auto)",
    ]


@pytest.mark.timeout(60)
def test_doctor_errors_exit_1(
    bot_api: BotApiServer, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    bot_api.add_chat(-1009, is_forum=False)
    config = tmp_path / "takopi.toml"
    _telegram_config(
        config,
        bot_api.base_url,
        "voice_transcription = true\n[transports.telegram.topics]\nenabled = true\n",
        chat_id=-1009,
    )
    env = {k: v for k, v in cli_env.items() if k != "OPENAI_API_KEY"}
    result = run_cli([TAKOPI, "doctor", "--config-path", str(config)], env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "- chat_id: ok (supergroup (-1009))" in lines
    assert "- topics: error (topics are not enabled in chat -1009)" in lines
    assert "- voice transcription: error (API key not set)" in lines

    # a token Telegram refuses: the reference's texts on stdout, Telegram's reason on stderr
    config.write_text(
        "[transports.telegram]\n"
        f'bot_token = "999:refused-token-value"\nchat_id = 1001\napi_url = "{bot_api.base_url}"\n'
        "[transports.telegram.topics]\nenabled = true\n"
    )
    refused = run_cli([TAKOPI, "doctor", "--config-path", str(config)], env)
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[:4] == [
        "takopi doctor",
        "- telegram token: error (failed to fetch bot info)",
        "- chat_id: error (skipped (token invalid))",
        "- topics: error (skipped (token invalid))",
    ]
    assert "doctor.check_failed" in refused.stderr and "Unauthorized" in refused.stderr
    assert "refused-token-value" not in refused.stdout + refused.stderr

    _telegram_config(config, bot_api.base_url, chat_id=4242)
    unreachable = run_cli([TAKOPI, "doctor", "--config-path", str(config)], env)
    assert unreachable.returncode == 1
    assert "- chat_id: error (unreachable (4242))" in unreachable.stdout

    config.write_text('transport = "clirec"\n')
    other = run_cli([TAKOPI, "doctor", "--config-path", str(config)], env)
    assert other.returncode == 1
    assert "error: takopi doctor currently supports the telegram transport only." in other.stderr


def test_plugins_lists_and_loads(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = tmp_path / "takopi.toml"
    listed = run_cli([TAKOPI, "plugins", "--config-path", str(config)], cli_env)
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    sections = [line for line in out.splitlines() if not line.startswith(" ")]
    assert sections[:3] == ["engine backends:", "transport backends:", "command backends:"]
    assert f"  codex (takopi) [python: {sys.executable}]" in out
    assert f"  clitest (takopi-clitest) [python: {sys.executable}]" in out
    assert "  clirec (takopi-clitest)" in out
    assert "clibroken" in out and "broken on purpose" not in out  # listing never imports

    loaded = run_cli([TAKOPI, "plugins", "--load", "--config-path", str(config)], cli_env)
    assert loaded.returncode == 0
    assert "  clitest (takopi-clitest) [python: " in loaded.stdout
    assert "clitest (takopi-clitest) [python: " + sys.executable + "] loaded" in loaded.stdout
    assert "clibroken (takopi-clitest) [python: " + sys.executable + "] failed" in loaded.stdout
    errors = loaded.stdout.split("errors:\n", 1)[1]
    assert "  engine clibroken (takopi-clitest): " in errors
    assert "broken on purpose" in errors

    config.write_text('[plugins]\nenabled = ["takopi-clitest"]\n')
    filtered = run_cli([TAKOPI, "plugins", "--config-path", str(config)], cli_env)
    assert "  codex (takopi) enabled" in filtered.stdout
    assert "  clitest (takopi-clitest) enabled" in filtered.stdout
    config.write_text('[plugins]\nenabled = ["other"]\n')
    filtered = run_cli([TAKOPI, "plugins", "--config-path", str(config)], cli_env)
    assert "  clitest (takopi-clitest) disabled" in filtered.stdout


@pytest.mark.timeout(120)
def test_console_transport_with_no_config(cli_env: dict[str, str], home: Path) -> None:
    """No config file, no agent CLI on PATH: the demo engine answers in the terminal."""
    env = dict(cli_env, PYTHONPATH="")
    result = run_cli(
        [TAKOPI, "--transport", "console"],
        env,
        input="hello from the test\n",
        timeout=100,
        cwd=home,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "You said: hello from the test" in result.stdout
    assert "demo resume " in result.stdout
    assert not (home / ".takopi" / "takopi.toml").exists()


def test_missing_engine_cli_is_an_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = tmp_path / "takopi.toml"
    config.write_text('default_engine = "codex"\n')
    result = run_cli([TAKOPI, "--config", str(config), "--transport", "console"], cli_env, input="")
    assert result.returncode == 1
    assert "error: install codex" in result.stderr
    assert "npm" in result.stderr


def test_in_process_runner_rejects_unknown_engine(tmp_path: Path) -> None:
    config = tmp_path / "takopi.toml"
    config.write_text('default_engine = "nope"\n')
    result = CliRunner().invoke(
        create_app([]), ["--config", str(config), "--transport", "console"], input=""
    )
    assert result.exit_code == 1
    assert "Unknown engine 'nope'" in result.stderr


def test_onboarding_paths_lists_every_wizard_outcome() -> None:
    result = CliRunner().invoke(create_app([]), ["onboarding-paths"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "onboarding paths (15)"
    rows = [line.split()[0] for line in lines[2:]]
    assert len(rows) == 15
    assert {w: rows.count(w) for w in set(rows)} == {"assistant": 5, "workspace": 5, "handoff": 5}
    assert sum("cancelled" in line for line in lines) == 3
