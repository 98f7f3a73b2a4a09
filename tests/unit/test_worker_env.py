"""The environment rules per worker kind (takopi.supervisor.worker_env)."""

from __future__ import annotations

from takopi.supervisor.worker_env import (
    EnvPolicy,
    forkable_environment,
    is_credential_name,
    secret_values,
    start_env,
)

BOT = "123456:telegram-bot-token-value"
ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home/u",
    "LANG": "C.UTF-8",
    "PYTHONPATH": "/src",
    "TAKOPI_LOG_LEVEL": "info",
    "NOTIFY_SOCKET": "/run/systemd/notify",
    "TAKOPI__TRANSPORTS__TELEGRAM__BOT_TOKEN": BOT,
    "TAKOPI__TRANSPORTS__SLACK__APP_TOKEN": "xapp-slack-app-token",
    "TAKOPI__CODEX__MODEL": "o4",
    "MIRRORED": f"prefix {BOT}",
    "OPENAI_API_KEY": "sk-openai",
    "OPENAI_BASE_URL": "http://127.0.0.1:9",
    "ANTHROPIC_API_KEY": "sk-ant",
    "ANTHROPIC_AUTH_TOKEN": "ant-auth",
    "CLAUDE_CONFIG_DIR": "/c",
    "GEMINI_API_KEY": "gm",
    "GITHUB_TOKEN": "ghp",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "FAKE_CODEX_DIR": "/tmp/x",
}


def test_credential_names() -> None:
    for name in ("OPENAI_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"):
        assert is_credential_name(name), name
    for name in ("PATH", "SSH_AUTH_SOCK", "OPENAI_BASE_URL", "KEYBOARD", "TOKENIZERS_X"):
        assert not is_credential_name(name), name


def test_start_env_is_an_allow_list_without_credentials() -> None:
    env = start_env({**ENV, "TAKOPI_SECRET": "x", "LC_ALL": "C", "XDG_CONFIG_HOME": "/x"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/src",
        "TAKOPI_LOG_LEVEL": "info",
        "LC_ALL": "C",
        "XDG_CONFIG_HOME": "/x",
    }


def test_transport_secret_values_from_config_tables() -> None:
    tables = [
        {
            "telegram": {
                "bot_token": BOT,
                "chat_id": 12345678901,
                "voice_transcription_api_key": "sk-voice-key-value",
                "topics": {"webhook_secret": "nested-secret-value"},
            },
            "slack": {"app_token": "short", "channels": ["a-token-like-but-list"]},
        }
    ]
    assert secret_values(tables) == {BOT, "nested-secret-value"}


def test_transport_gets_its_own_overrides_not_systemd_nor_other_transports() -> None:
    env = EnvPolicy(ENV).transport("telegram")
    assert env["TAKOPI__TRANSPORTS__TELEGRAM__BOT_TOKEN"] == BOT
    assert "TAKOPI__TRANSPORTS__SLACK__APP_TOKEN" not in env
    assert "NOTIFY_SOCKET" not in env
    assert env["OPENAI_API_KEY"] == "sk-openai"  # voice transcription


def test_commands_and_third_party_engines_lose_only_transport_secrets() -> None:
    policy = EnvPolicy(ENV, transport_secrets=[BOT])
    for env in (policy.command("echo"), policy.engine("some-plugin-engine")):
        assert not [k for k in env if k.startswith("TAKOPI__TRANSPORTS__")]
        assert "MIRRORED" not in env  # found by its value
        assert "NOTIFY_SOCKET" not in env
        assert env["GITHUB_TOKEN"] == "ghp" and env["OPENAI_API_KEY"] == "sk-openai"
        assert env["TAKOPI__CODEX__MODEL"] == "o4"


def test_codex_gets_openai_credentials_only() -> None:
    env = EnvPolicy(ENV, transport_secrets=[BOT]).engine("codex")
    assert env["OPENAI_API_KEY"] == "sk-openai" and env["OPENAI_BASE_URL"]
    assert env["FAKE_CODEX_DIR"] == "/tmp/x" and env["PATH"] == "/usr/bin"  # not credentials
    for gone in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GEMINI_API_KEY", "GITHUB_TOKEN"):
        assert gone not in env, gone
    assert "MIRRORED" not in env and not [k for k in env if k.startswith("TAKOPI__TRANSPORTS")]


def test_codex_custom_provider_key_by_config() -> None:
    env = EnvPolicy(ENV, engine_env={"codex": ["GEMINI_API_KEY"]}).engine("codex")
    assert env["GEMINI_API_KEY"] == "gm" and "GITHUB_TOKEN" not in env


def test_claude_api_key_only_with_api_billing() -> None:
    env = EnvPolicy(ENV).engine("claude")
    assert "ANTHROPIC_API_KEY" not in env
    assert env["ANTHROPIC_AUTH_TOKEN"] == "ant-auth" and env["CLAUDE_CONFIG_DIR"] == "/c"
    assert "OPENAI_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    billed = EnvPolicy(ENV, api_billing=["claude"]).engine("claude")
    assert billed["ANTHROPIC_API_KEY"] == "sk-ant"
    bedrock = EnvPolicy({**ENV, "CLAUDE_CODE_USE_BEDROCK": "1"}).engine("claude")
    assert bedrock["AWS_SECRET_ACCESS_KEY"] == "aws"


def test_multi_provider_engines_get_provider_keys_but_no_transport_secret() -> None:
    for engine in ("opencode", "pi"):
        env = EnvPolicy(ENV, transport_secrets=[BOT]).engine(engine)
        assert env["GEMINI_API_KEY"] == "gm" and env["ANTHROPIC_API_KEY"] == "sk-ant"
        assert "MIRRORED" not in env and not [k for k in env if "TRANSPORTS" in k]


def test_a_secret_free_environment_may_fork_the_zygote() -> None:
    systemd_unit = {
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/var/lib/takopi",
        "LANG": "C.UTF-8",
        "INVOCATION_ID": "0123456789abcdef0123456789abcdef",
        "JOURNAL_STREAM": "8:123456",
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "CODEX_HOME": "/var/lib/takopi/.codex",  # not a start name, but a path
        "DEBUG": "1",  # too short to be a secret
    }
    assert forkable_environment(systemd_unit)


def test_anything_that_could_hold_a_secret_means_a_spawned_zygote() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/home/u"}
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    for extra in (
        {"TAKOPI__TRANSPORTS__TELEGRAM__BOT_TOKEN": token},
        {"TAKOPI__TRANSPORTS__TELEGRAM__CHAT": "1"},  # any transport override
        {"CHAT_BOT": token},  # innocently named, holding a bot token
        {"OPENAI_API_KEY": "sk-short"},  # named like a credential, whatever its value
        {"GITHUB_TOKEN": "/not/really/a/path"},
        {"SOME_SETTING": "relative/path/but/long"},
    ):
        assert not forkable_environment({**base, **extra}), extra
