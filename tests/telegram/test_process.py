"""The backend's real entry point (``build_and_run``) in a real process."""

from __future__ import annotations

import pytest

from takopi.telegram.backend import BACKEND
from tests.support.processes import fresh_python
from tests.telegram.conftest import CHAT
from tests.telegram.run_transport import transport_process

pytestmark = pytest.mark.timeout(90)


def test_build_and_run_in_a_process_never_logs_the_token(server, fake_codex, tmp_path):
    server.inject("5xx", method="sendMessage", count=2)
    server.inject("drop", method="getUpdates", count=1)
    server.inject(
        "error", method="editMessageText", count=1, description=f"Bad Request: bot{server.token}"
    )
    with transport_process(tmp_path, server, CHAT) as running:
        user = server.send_user_message(CHAT, f"my token is {server.token}")
        server.wait_for(
            lambda: any(
                m.reply_to_message_id == user["message_id"] and m.text.startswith("done")
                for m in server.bot_messages(CHAT)
            ),
            timeout=30,
        )
    logs = running.logs
    assert "telegram.outbox.transient_error" in logs  # errors were logged…
    assert "handle.incoming" in logs
    secret = server.token.split(":", 1)[1]
    assert secret not in logs  # …never with the token
    assert "[REDACTED" in logs


def test_lock_token_returns_the_bot_token(tmp_path):
    token = "987654321:AAAbbbCCCdddEEEfff"
    assert (
        BACKEND.lock_token(
            transport_config={"bot_token": token, "chat_id": 5}, _config_path=tmp_path / "t.toml"
        )
        == token
    )
    assert BACKEND.lock_token(transport_config={}, _config_path=tmp_path / "t.toml") is None


def test_bad_transport_config_is_a_config_error(tmp_path):
    from takopi.config import ConfigError

    with pytest.raises(ConfigError, match="chat_id"):
        BACKEND.build_and_run(
            transport_config={"bot_token": "1:x", "chat_id": "nope"},
            config_path=tmp_path / "takopi.toml",
            runtime=None,
            final_notify=True,
            default_engine_override=None,
        )


def test_rejected_token_is_a_config_error(server, tmp_path):
    from takopi.config import ConfigError
    from tests.telegram.conftest import make_runtime

    with pytest.raises(ConfigError, match="rejected the bot token"):
        BACKEND.build_and_run(
            transport_config={
                "bot_token": "1:wrongtoken",
                "chat_id": CHAT,
                "api_url": server.base_url,
            },
            config_path=tmp_path / "takopi.toml",
            runtime=make_runtime(tmp_path / "takopi.toml"),
            final_notify=True,
            default_engine_override=None,
        )


def test_check_setup_reports_missing_cli_and_config(tmp_path, monkeypatch):
    from takopi.backends import EngineBackend
    from takopi.telegram.backend import TelegramBackend

    engine = EngineBackend(
        id="nosuchengine", build_runner=lambda c, p: None, install_cmd="npm i -g nosuch"
    )
    backend = TelegramBackend()
    monkeypatch.setenv("TAKOPI_CONFIG_PATH", str(tmp_path / "missing.toml"))
    result = backend.check_setup(engine)
    titles = [issue.title for issue in result.issues]
    assert titles == ["install nosuchengine", "create a config"]
    assert result.issues[0].lines == ("$ npm i -g nosuch",)
    # an existing config without [transports.telegram]
    bad = tmp_path / "bad.toml"
    bad.write_text('transport = "telegram"\n')
    monkeypatch.setenv("TAKOPI_CONFIG_PATH", str(bad))
    assert [i.title for i in backend.check_setup(engine).issues][-1] == "configure telegram"
    # another transport forced: the telegram table is not checked
    assert [i.title for i in backend.check_setup(engine, transport_override="console").issues] == [
        "install nosuchengine"
    ]
    # the config handed to lock_token (as in a transport worker) wins over the env
    good = tmp_path / "good.toml"
    good.write_text('[transports.telegram]\nbot_token = "1:abc"\nchat_id = 5\n')
    backend.lock_token(transport_config={"bot_token": "1:abc", "chat_id": 5}, _config_path=good)
    engine_ok = EngineBackend(id="sh", build_runner=lambda c, p: None)
    assert backend.check_setup(engine_ok).ok


def test_check_setup_in_a_worker_reuses_the_validated_table(tmp_path):
    """A transport worker validates its table in lock_token; check_setup must then neither
    re-read the config nor import the settings loader (pydantic-settings stays out of the
    long-lived transport process)."""
    config = tmp_path / "takopi.toml"
    config.write_text('[transports.telegram]\nbot_token = "1:abc"\nchat_id = 5\n')
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from takopi.backends import EngineBackend\n"
        "from takopi.telegram.backend import TelegramBackend\n"
        "backend = TelegramBackend()\n"
        f"path = Path({str(config)!r})\n"
        "backend.lock_token(transport_config={'bot_token': '1:abc', 'chat_id': 5}, "
        "_config_path=path)\n"
        "result = backend.check_setup(EngineBackend(id='sh', build_runner=lambda c, p: None))\n"
        "print(result.ok, result.config_path == path)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic_settings', 'dotenv')) or 'none', 'takopi.settings' in sys.modules)\n"
    )
    assert fresh_python(code) == ["True True", "none False"]


def test_the_telegram_client_leaves_the_httpx_cli_out():
    """httpx's optional command-line client (click, pygments) is never imported by the
    transport's HTTP client, and httpx still offers its ``main`` fallback."""
    code = (
        "import sys\n"
        "import takopi.telegram.client, httpx\n"
        "print(callable(httpx.main), httpx.Client.__name__)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'click', 'pygments', 'rich'}))\n"
    )
    assert fresh_python(code) == ["True Client", "[]"]


def test_startup_message_lists_engines_projects_and_mode(tmp_path):
    from takopi.projects import ProjectConfig, ProjectsConfig
    from takopi.telegram.backend import build_startup_message
    from tests.telegram.conftest import make_runtime

    runtime = make_runtime(
        tmp_path / "t.toml",
        ProjectsConfig(projects={"web": ProjectConfig(alias="web", path=tmp_path)}),
    )
    text = build_startup_message(
        runtime, session_mode="chat", show_resume_line=False, cwd="/srv/work"
    )
    assert text.splitlines() == [
        "🐙 **takopi is ready**",
        "",
        "default: `codex`  ",
        "engines: `codex`  ",
        "projects: `web`  ",
        "mode: `chat`  ",
        "topics: `disabled`  ",
        "resume lines: `hidden`  ",
        "working in: `/srv/work`",
    ]
