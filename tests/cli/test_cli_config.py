"""`takopi config path|list|get|set|unset`: output, validation and exit codes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from takopi.cli.main import create_app
from tests.cli.conftest import TAKOPI, run_cli


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "takopi.toml"
    path.write_text(
        'default_engine = "codex"\n'
        'transport = "telegram"\n'
        "[transports.telegram]\n"
        'bot_token = "123:abc"\n'
        "chat_id = 42\n"
        "[transports.telegram.topics]\n"
        "enabled = false\n"
        "[projects.site]\n"
        'path = "/srv/site"\n'
    )
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(create_app([]), list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def read(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_path_prints_home_relative_default(cli_env: dict[str, str]) -> None:
    result = run_cli([TAKOPI, "config", "path"], cli_env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "~/.takopi/takopi.toml\n"


def test_path_honours_config_path(cfg: Path) -> None:
    code, out, _ = invoke("config", "path", "--config-path", str(cfg))
    assert (code, out) == (0, f"{cfg}\n")
    code, out, _ = invoke("--config", str(cfg), "config", "path")
    assert (code, out) == (0, f"{cfg}\n")


def test_list_is_flat_and_sorted(cfg: Path) -> None:
    code, out, _ = invoke("config", "list", "--config-path", str(cfg))
    assert code == 0
    assert out.splitlines() == [
        'default_engine = "codex"',
        'projects.site.path = "/srv/site"',
        'transport = "telegram"',
        'transports.telegram.bot_token = "123:abc"',
        "transports.telegram.chat_id = 42",
        "transports.telegram.topics.enabled = false",
    ]


def test_list_missing_config_exits_1(tmp_path: Path) -> None:
    code, out, err = invoke("config", "list", "--config-path", str(tmp_path / "nope.toml"))
    assert code == 1
    assert out == ""
    assert err.startswith("error: Missing config file")


def test_get_leaf_table_missing_and_bad_key(cfg: Path, tmp_path: Path) -> None:
    assert invoke("config", "get", "transports.telegram.chat_id", "--config-path", str(cfg))[
        :2
    ] == (0, "42\n")
    assert invoke("config", "get", "default_engine", "--config-path", str(cfg))[:2] == (
        0,
        '"codex"\n',
    )
    code, out, err = invoke("config", "get", "transports.nope", "--config-path", str(cfg))
    assert (code, out, err) == (1, "", "")
    code, _, err = invoke("config", "get", "transports.telegram", "--config-path", str(cfg))
    assert code == 2
    assert err == "error: 'transports.telegram' is a table; pick a leaf node.\n"
    code, _, err = invoke("config", "get", "a..b", "--config-path", str(cfg))
    assert code == 2 and "Invalid config key" in err
    code, _, err = invoke("config", "get", "x", "--config-path", str(tmp_path / "missing.toml"))
    assert code == 2 and "Missing config file" in err


def test_set_normalizes_and_creates_tables(cfg: Path) -> None:
    code, out, _ = invoke(
        "config", "set", "transports.telegram.chat_id", '"-100123"', "--config-path", str(cfg)
    )
    assert code == 0
    assert out == "updated transports.telegram.chat_id = -100123\n"
    assert read(cfg)["transports"]["telegram"]["chat_id"] == -100123

    code, out, _ = invoke("config", "set", "codex.profile", "fast", "--config-path", str(cfg))
    assert (code, out) == (0, 'updated codex.profile = "fast"\n')
    code, out, _ = invoke(
        "config", "set", "plugins.enabled", '["takopi-x"]', "--config-path", str(cfg)
    )
    assert (code, out) == (0, 'updated plugins.enabled = ["takopi-x"]\n')
    code, out, _ = invoke("config", "set", "codex.note", "", "--config-path", str(cfg))
    assert (code, out) == (0, 'updated codex.note = ""\n')
    data = read(cfg)
    assert data["codex"] == {"profile": "fast", "note": ""}
    assert data["plugins"] == {"enabled": ["takopi-x"]}
    assert data["projects"]["site"]["path"] == "/srv/site"  # untouched


def test_set_invalid_value_exits_2_and_keeps_file(cfg: Path) -> None:
    before = cfg.read_text()
    code, out, err = invoke(
        "config", "set", "transports.telegram.session_mode", "bogus", "--config-path", str(cfg)
    )
    assert code == 2
    assert out == ""
    assert "session_mode" in err and err.startswith("error: Invalid config")
    code, _, err = invoke(
        "config", "set", "transports.telegram.chat_id", "true", "--config-path", str(cfg)
    )
    assert code == 2 and "chat_id" in err
    code, _, err = invoke("config", "set", "default_engine.x", "1", "--config-path", str(cfg))
    assert code == 2 and "not a table" in err
    code, _, err = invoke("config", "set", "bad key", "1", "--config-path", str(cfg))
    assert code == 2 and "Invalid config key" in err
    assert cfg.read_text() == before


def test_set_migrates_legacy_config(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    path.write_text('bot_token = "1:x"\nchat_id = 5\n')
    code, out, _ = invoke("config", "set", "default_engine", "claude", "--config-path", str(path))
    assert code == 0, out
    data = read(path)
    assert "bot_token" not in data
    assert data["transports"]["telegram"] == {"bot_token": "1:x", "chat_id": 5}
    assert data["transport"] == "telegram"
    assert data["default_engine"] == "claude"


def test_set_creates_missing_config(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "takopi.toml"
    code, out, _ = invoke("config", "set", "watch_config", "true", "--config-path", str(path))
    assert (code, out) == (0, "updated watch_config = true\n")
    assert read(path) == {"watch_config": True}


def test_unset_prunes_empty_tables(cfg: Path) -> None:
    code, out, _ = invoke("config", "unset", "projects.site.path", "--config-path", str(cfg))
    assert (code, out) == (0, "removed projects.site.path\n")
    assert "projects" not in read(cfg)
    code, out, err = invoke("config", "unset", "projects.site.path", "--config-path", str(cfg))
    assert (code, out, err) == (1, "", "")


def test_unset_that_breaks_validation_exits_2(cfg: Path) -> None:
    before = cfg.read_text()
    code, _, err = invoke(
        "config", "unset", "transports.telegram.chat_id", "--config-path", str(cfg)
    )
    assert code == 2
    assert "chat_id" in err
    assert cfg.read_text() == before


def test_real_binary_exit_codes(cfg: Path, cli_env: dict[str, str]) -> None:
    ok = run_cli(
        [TAKOPI, "config", "get", "transports.telegram.chat_id", "--config-path", str(cfg)], cli_env
    )
    assert (ok.returncode, ok.stdout) == (0, "42\n")
    table = run_cli([TAKOPI, "config", "get", "projects", "--config-path", str(cfg)], cli_env)
    assert table.returncode == 2
    assert "pick a leaf node" in table.stderr
    assert "Traceback" not in table.stderr
