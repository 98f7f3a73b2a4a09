"""TakopiSettings: defaults, validation messages, env overrides, accessors (core-config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.config import HOME_CONFIG_PATH, ConfigError
from takopi.settings import (
    TakopiSettings,
    TelegramFilesSettings,
    TelegramTopicsSettings,
    TelegramTransportSettings,
    load_settings,
    require_telegram_config,
    validate_settings,
)

CFG = Path("/cfg/takopi.toml")
TG: dict[str, Any] = {"bot_token": "123:abc", "chat_id": -100}


@pytest.fixture(autouse=True)
def _no_takopi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("TAKOPI__"):
            monkeypatch.delenv(name)


def _tg(**extra: Any) -> dict[str, Any]:
    return {"transports": {"telegram": {**TG, **extra}}}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_settings(data, config_path=CFG)
    return str(info.value)


def test_defaults() -> None:
    s = validate_settings(_tg())
    assert (s.watch_config, s.default_engine, s.default_project, s.transport) == (
        False,
        "codex",
        None,
        "telegram",
    )
    assert s.projects == {} and s.plugins.enabled == []
    tg = require_telegram_config(s, CFG)
    assert tg.model_dump() == {
        "bot_token": "123:abc",
        "chat_id": -100,
        "allowed_user_ids": [],
        "message_overflow": "trim",
        "voice_transcription": False,
        "voice_max_bytes": 10485760,
        "voice_transcription_model": "gpt-4o-mini-transcribe",
        "voice_transcription_base_url": None,
        "voice_transcription_api_key": None,
        "session_mode": "stateless",
        "show_resume_line": True,
        "forward_coalesce_s": 1.0,
        "media_group_debounce_s": 1.0,
        "topics": {"enabled": False, "scope": "auto"},
        "files": {
            "enabled": False,
            "auto_put": True,
            "auto_put_mode": "upload",
            "uploads_dir": "incoming",
            "allowed_user_ids": [],
            "deny_globs": [".git/**", ".env", ".envrc", "*.pem", ".ssh/**"],
        },
        "api_url": "https://api.telegram.org",
        "offline_backlog": "notify",
    }
    assert TelegramFilesSettings.max_upload_bytes == 20 * 1024 * 1024
    assert TelegramFilesSettings.max_download_bytes == 50 * 1024 * 1024
    assert "max_upload_bytes" not in TelegramFilesSettings.model_fields  # not configurable


def test_plugin_facing_models_validate_alone() -> None:
    # tg-group-auth calls these directly
    assert TelegramTopicsSettings.model_validate({"enabled": True}).scope == "auto"
    files = TelegramFilesSettings.model_validate({"enabled": True, "uploads_dir": " up "})
    assert files.uploads_dir == "up"
    assert TelegramTransportSettings.model_validate(TG).chat_id == -100


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"transports": {"telegram": {"chat_id": 1}}},
            "transports.telegram.bot_token: Field required",
        ),
        (
            {"transports": {"telegram": {"bot_token": "x"}}},
            "transports.telegram.chat_id: Field required",
        ),
        (
            {"transports": {"telegram": {"bot_token": "   ", "chat_id": 1}}},
            "transports.telegram.bot_token: String should have at least 1 character",
        ),
        (_tg(chat_id=True), "transports.telegram.chat_id: Input should be a valid integer"),
        (_tg(chat_id=1.0), "transports.telegram.chat_id: Input should be a valid integer"),
        (_tg(chat_id="12a"), "transports.telegram.chat_id: Input should be a valid integer"),
        (
            _tg(message_overflow="wrap"),
            "transports.telegram.message_overflow: Input should be 'trim' or 'split'",
        ),
        (
            _tg(session_mode="always"),
            "transports.telegram.session_mode: Input should be 'stateless' or 'chat'",
        ),
        (
            _tg(forward_coalesce_s=-0.5),
            "transports.telegram.forward_coalesce_s: Input should be greater than or equal to 0",
        ),
        (
            _tg(media_group_debounce_s=-1),
            "transports.telegram.media_group_debounce_s: "
            "Input should be greater than or equal to 0",
        ),
        (
            _tg(show_resume_line="sometimes"),
            "transports.telegram.show_resume_line: Input should be a valid boolean, "
            "unable to interpret input",
        ),
        (
            _tg(voice_max_bytes="big"),
            "transports.telegram.voice_max_bytes: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (
            _tg(allowed_user_ids=["me"]),
            "transports.telegram.allowed_user_ids.0: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (
            _tg(topics={"scope": "everywhere"}),
            "transports.telegram.topics.scope: Input should be 'auto', 'main', 'projects' or 'all'",
        ),
        (
            _tg(files={"auto_put_mode": "ask"}),
            "transports.telegram.files.auto_put_mode: Input should be 'upload' or 'prompt'",
        ),
        (
            _tg(files={"uploads_dir": "/tmp/up"}),
            "transports.telegram.files.uploads_dir: uploads_dir must be a relative path",
        ),
        (
            _tg(files={"max_upload_bytes": 1}),
            "transports.telegram.files.max_upload_bytes: Extra inputs are not permitted",
        ),
        (_tg(bot_tokn="typo"), "transports.telegram.bot_tokn: Extra inputs are not permitted"),
        ({"transports": {"slack": "token"}}, "transports.slack must be a table"),
        ({"plugins": {"run": "yes"}}, "plugins.run must be a table"),
        ({"plugins": {"enabled": "takopi-x"}}, "plugins.enabled: Input should be a valid list"),
        ({"projects": {"a": {}}}, "projects.a.path: Field required"),
        (
            {"projects": {"a": {"path": "x", "branch": "b"}}},
            "projects.a.branch: Extra inputs are not permitted",
        ),
        (
            {"projects": {"a": {"path": "x", "chat_id": False}}},
            "projects.a.chat_id: Input should be a valid integer",
        ),
        (
            {"watch_config": "maybe"},
            "watch_config: Input should be a valid boolean, unable to interpret input",
        ),
        ({"default_engine": " "}, "default_engine: String should have at least 1 character"),
        ({"transport": ""}, "transport: String should have at least 1 character"),
        (
            {"bot_token": "x", "chat_id": 1},
            'Move bot_token/chat_id under [transports.telegram] and set transport = "telegram".',
        ),
    ],
)
def test_validation_messages(data: dict[str, Any], message: str) -> None:
    assert _error(data) == f"Invalid config in {CFG}: {message}"


def test_several_errors_are_listed() -> None:
    message = _error(_tg(chat_id="x", message_overflow="no"))
    assert message.splitlines() == [
        f"Invalid config in {CFG}:",
        "- transports.telegram.chat_id: Input should be a valid integer",
        "- transports.telegram.message_overflow: Input should be 'trim' or 'split'",
    ]


def test_numeric_string_chat_ids_are_coerced() -> None:
    s = validate_settings(
        {
            "transports": {"telegram": {"bot_token": "t", "chat_id": " -100123 "}},
            "projects": {"a": {"path": "/a", "chat_id": "42"}},
        }
    )
    assert s.transports.telegram is not None
    assert s.transports.telegram.chat_id == -100123
    assert s.projects["a"].chat_id == 42


def test_strings_are_stripped() -> None:
    s = validate_settings(
        {
            "default_engine": " claude ",
            "transports": {"telegram": {"bot_token": "  123:abc\n", "chat_id": 1}},
            "plugins": {"enabled": [" takopi-x "]},
        }
    )
    assert s.default_engine == "claude"
    assert s.transports.telegram is not None and s.transports.telegram.bot_token == "123:abc"
    assert s.plugins.enabled == ["takopi-x"]


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__BOT_TOKEN", "999:fromenv")
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__CHAT_ID", "-555")
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__TOPICS__ENABLED", "true")
    monkeypatch.setenv("TAKOPI__DEFAULT_ENGINE", "pi")
    monkeypatch.setenv("takopi__watch_config", "1")
    s = validate_settings(
        {
            "default_engine": "codex",
            "transports": {
                "telegram": {"bot_token": "1:fromtoml", "chat_id": 1, "session_mode": "chat"}
            },
        }
    )
    tg = s.transports.telegram
    assert tg is not None
    assert (tg.bot_token, tg.chat_id, tg.session_mode) == ("999:fromenv", -555, "chat")
    assert tg.topics.enabled is True
    assert s.default_engine == "pi"
    assert s.watch_config is True


def test_env_override_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__MESSAGE_OVERFLOW", "wrap")
    assert _error(_tg()) == (
        f"Invalid config in {CFG}: "
        "transports.telegram.message_overflow: Input should be 'trim' or 'split'"
    )


def test_env_alone_can_provide_telegram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__BOT_TOKEN", "1:t")
    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__CHAT_ID", "5")
    s = validate_settings({})
    assert require_telegram_config(s).chat_id == 5


def test_other_transport_without_telegram_table() -> None:
    s = validate_settings({"transport": "slack", "transports": {"slack": {"app_token": "xapp"}}})
    assert s.transports.telegram is None
    assert s.transport_config("slack", config_path=CFG) == {"app_token": "xapp"}
    assert s.transport_config("discord", config_path=CFG) == {}
    with pytest.raises(ConfigError) as info:
        s.transport_config("telegram", config_path=CFG)
    assert str(info.value) == (
        f"Missing [transports.telegram] in {CFG}; "
        "set bot_token and chat_id (or run `takopi --onboard`)."
    )
    with pytest.raises(ConfigError, match=r"^Missing \[transports\.telegram\];"):
        require_telegram_config(s)


def test_telegram_transport_config_is_validated_dict() -> None:
    s = validate_settings(_tg(session_mode="chat"))
    cfg = s.transport_config("telegram", config_path=CFG)
    assert cfg["session_mode"] == "chat" and cfg["topics"] == {"enabled": False, "scope": "auto"}


def test_engine_tables_are_extra_top_level_keys() -> None:
    s = validate_settings({"codex": {"model": " gpt-5 ", "extra_args": ["-c"]}, "acme": 3})
    assert s.engine_config("codex", config_path=CFG) == {"model": " gpt-5 ", "extra_args": ["-c"]}
    assert s.engine_config("claude", config_path=CFG) == {}
    with pytest.raises(ConfigError) as info:
        s.engine_config("acme", config_path=CFG)
    assert str(info.value) == f"Invalid `acme` config in {CFG}; expected a table."


def test_plugin_tables_allowlist_and_python(tmp_path: Path) -> None:
    s = validate_settings(
        {
            "plugins": {
                "enabled": ["takopi-scripts"],
                "run": {"timeout": 3},
                "slack": {"python": "~/venvs/slack/bin/python"},
                "rel": {"python": "venvs/rel/bin/python"},
                "bare": {"python": "python3.13"},
                "bad": {"python": 3},
            }
        }
    )
    cfg = tmp_path / "takopi.toml"
    assert s.plugins_allowlist() == ["takopi-scripts"]
    assert validate_settings({}).plugins_allowlist() is None
    assert s.plugin_config("run") == {"timeout": 3}
    assert s.plugin_config("missing") == {}
    assert set(s.plugin_configs()) == {"run", "slack", "rel", "bare", "bad"}
    assert s.plugin_python("run") is None
    assert s.plugin_python("slack") == str(Path.home() / "venvs/slack/bin/python")
    assert s.plugin_python("rel", config_path=cfg) == str(tmp_path / "venvs/rel/bin/python")
    assert s.plugin_python("bare", config_path=cfg) == "python3.13"
    with pytest.raises(ConfigError) as info:
        s.plugin_python("bad", config_path=cfg)
    assert str(info.value) == (
        f"Invalid `plugins.bad.python` in {cfg}; expected a path to a Python interpreter."
    )


def test_load_settings_paths(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    with pytest.raises(ConfigError, match=r"^Missing config file "):
        load_settings(path)
    path.write_text('transport = "console"\n')
    settings, resolved = load_settings(str(path))
    assert isinstance(settings, TakopiSettings) and resolved == path
    path.write_text("transport = [\n")
    with pytest.raises(ConfigError, match=r"^Malformed TOML in "):
        load_settings(path)
    import takopi.settings as settings_module

    assert settings_module.HOME_CONFIG_PATH == HOME_CONFIG_PATH


def test_config_set_flow_validates_file_alone_and_normalizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from takopi.config import parse_value, read_config, set_key, write_config
    from takopi.settings import normalized_value

    monkeypatch.setenv("TAKOPI__TRANSPORTS__TELEGRAM__CHAT_ID", "777")
    path = tmp_path / "takopi.toml"
    write_config({"transports": {"telegram": {"bot_token": "1:t", "chat_id": 1}}}, path)
    data = read_config(path)
    set_key(data, "transports.telegram.chat_id", parse_value('"-100123"'))
    settings = validate_settings(data, config_path=path, use_env=False)
    value = normalized_value(settings, "transports.telegram.chat_id")
    assert value == -100123  # the string became an int, and the env value did not leak in
    set_key(data, "transports.telegram.chat_id", value)
    write_config(data, path)
    assert read_config(path)["transports"]["telegram"]["chat_id"] == -100123
    assert validate_settings(data).transports.telegram.chat_id == 777  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        normalized_value(settings, "transports.telegram.nope")
    codex = validate_settings({"codex": {"m": 1}}, use_env=False)
    assert normalized_value(codex, "codex.m") == 1


def test_load_settings_without_path_uses_active_config_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # plugins call load_settings() with no argument; inside a worker that must be the
    # supervisor's config, which it exports as TAKOPI_CONFIG_PATH
    path = tmp_path / "active.toml"
    path.write_text('transport = "console"\ndefault_engine = "pi"\n')
    monkeypatch.setenv("TAKOPI_CONFIG_PATH", str(path))
    settings, resolved = load_settings()
    assert (resolved, settings.default_engine) == (path, "pi")


def test_require_telegram_config_with_a_raw_table_returns_token_and_chat(tmp_path: Path) -> None:
    """Third-party transports (tg-group-auth) pass the raw table and unpack (token, chat_id)."""
    path = tmp_path / "takopi.toml"
    assert require_telegram_config({"bot_token": " 1:abc ", "chat_id": 5}, path) == ("1:abc", 5)
    with pytest.raises(ConfigError, match="Missing bot token"):
        require_telegram_config({"chat_id": 5}, path)
    with pytest.raises(ConfigError, match="Missing chat_id"):
        require_telegram_config({"bot_token": "1:abc"}, path)
    with pytest.raises(ConfigError, match="expected an integer"):
        require_telegram_config({"bot_token": "1:abc", "chat_id": True}, path)
