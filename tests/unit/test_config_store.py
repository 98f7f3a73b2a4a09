"""Config file I/O and dotted-key helpers (core-config)."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from takopi.config import (
    HOME_CONFIG_PATH,
    ConfigError,
    dump_toml,
    ensure_table,
    flatten_config,
    format_value,
    get_key,
    parse_value,
    read_config,
    resolve_config_path,
    set_key,
    unset_key,
    write_config,
)
from tests.support.processes import fresh_python


def test_home_config_path_and_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAKOPI_CONFIG_PATH", raising=False)
    assert Path.home() / ".takopi" / "takopi.toml" == HOME_CONFIG_PATH
    assert resolve_config_path(None) == HOME_CONFIG_PATH
    assert resolve_config_path("") == HOME_CONFIG_PATH
    monkeypatch.setenv("TAKOPI_CONFIG_PATH", str(tmp_path / "active.toml"))
    assert resolve_config_path(None) == tmp_path / "active.toml"
    assert resolve_config_path(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    monkeypatch.delenv("TAKOPI_CONFIG_PATH")
    assert resolve_config_path("~/x.toml") == Path.home() / "x.toml"
    assert resolve_config_path(tmp_path / "a.toml") == tmp_path / "a.toml"


def test_read_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        read_config(missing)
    assert str(info.value) == f"Missing config file {missing}."
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path)
    assert str(info.value) == f"Config path {tmp_path} exists but is not a file."
    bad = tmp_path / "bad.toml"
    bad.write_text("a = [1,\n")
    with pytest.raises(ConfigError) as info:
        read_config(bad)
    assert str(info.value).startswith(f"Malformed TOML in {bad}: ")


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    config = {
        "default_engine": "claude",
        "watch_config": True,
        "transports": {"telegram": {"bot_token": "1:x", "chat_id": -100123, "ratio": 1.5}},
        "projects": {"Takopi": {"path": "~/dev/takopi", "worktrees_dir": ".wt"}},
        "plugins": {"enabled": ["takopi-slack", "takopi_cron"]},
        "codex": {"extra_args": ["-c", "notify=[]"]},
    }
    path = tmp_path / "nested" / "takopi.toml"
    write_config(config, path)
    assert read_config(path) == config
    assert tomllib.loads(dump_toml(config)) == config
    # the config holds secrets: owner-only, and no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["takopi.toml"]


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "takopi.toml"
    write_config({"a": 1}, path)
    inode_before = path.stat().st_ino
    write_config({"a": 2}, path)
    assert read_config(path) == {"a": 2}
    assert path.stat().st_ino != inode_before  # replaced, not rewritten in place
    with pytest.raises(ConfigError):
        write_config({"a": object()}, path)
    assert read_config(path) == {"a": 2}  # a failed dump leaves the old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["takopi.toml"]


def test_dump_toml_drops_none() -> None:
    assert tomllib.loads(dump_toml({"a": None, "b": {"c": None, "d": 1}})) == {"b": {"d": 1}}


def test_ensure_table(tmp_path: Path) -> None:
    config: dict[str, object] = {"plugins": {"x": 1}, "bad": 3}
    assert ensure_table(config, "plugins") == {"x": 1}
    created = ensure_table(config, "transports")
    assert created == {} and config["transports"] is created
    with pytest.raises(ConfigError) as info:
        ensure_table(config, "bad", config_path=tmp_path / "t.toml", label="transports.bad")
    assert (
        str(info.value) == f"Invalid `transports.bad` in {tmp_path / 't.toml'}; expected a table."
    )
    with pytest.raises(ConfigError, match=r"^Invalid `bad`; expected a table\.$"):
        ensure_table(config, "bad")


def test_dotted_keys_set_get_unset() -> None:
    config: dict[str, object] = {}
    set_key(config, "transports.telegram.chat_id", 123)
    set_key(config, "transports.telegram.topics.enabled", True)
    set_key(config, "default_engine", "codex")
    assert get_key(config, "transports.telegram.chat_id") == 123
    assert get_key(config, "transports.telegram.topics") == {"enabled": True}
    with pytest.raises(KeyError):
        get_key(config, "transports.slack.token")
    assert unset_key(config, "transports.telegram.topics.enabled") is True
    # emptied parents are pruned, non-empty ones kept
    assert config == {"transports": {"telegram": {"chat_id": 123}}, "default_engine": "codex"}
    assert unset_key(config, "transports.telegram.chat_id") is True
    assert config == {"default_engine": "codex"}
    assert unset_key(config, "nope.key") is False
    assert unset_key(config, "default_engine.deeper") is False


def test_dotted_key_validation() -> None:
    for bad in ("a..b", "a.b c", "", "a.é", ".a"):
        with pytest.raises(ConfigError, match=r"segment must match \^\[A-Za-z0-9_-\]\+\$"):
            set_key({}, bad, 1)
    config: dict[str, object] = {"a": 1}
    with pytest.raises(ConfigError, match=r"Cannot set 'a\.b': 'a' is not a table\."):
        set_key(config, "a.b", 2)
    set_key(config, "Key-With_dash9", 1)
    assert config["Key-With_dash9"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123", 123),
        ("-100123", -100123),
        ("true", True),
        ("1.5", 1.5),
        ('"quoted"', "quoted"),
        ('["a", "b"]', ["a", "b"]),
        ("{ x = 1 }", {"x": 1}),
        ("plain text", "plain text"),
        ("codex", "codex"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_parse_value(raw: str, expected: object) -> None:
    assert parse_value(raw) == expected


def test_format_value_and_flatten() -> None:
    assert format_value("a") == '"a"'
    assert format_value(True) == "true"
    assert format_value([1, "x"]) == '[1, "x"]'
    assert format_value({"a": 1, "b c": [True]}) == '{ a = 1, "b c" = [true] }'
    config = {"b": {"y": 1, "x": "s"}, "a": False}
    assert flatten_config(config) == ["a = false", 'b.x = "s"', "b.y = 1"]
    for line in flatten_config(config):
        key, literal = line.split(" = ", 1)
        assert get_key(config, key) == parse_value(literal)


def test_write_config_leaves_no_temp_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "dir_in_the_way"
    target.mkdir()
    (target / "child").write_text("x")  # os.replace onto a non-empty dir fails
    with pytest.raises(OSError):
        write_config({"a": 1}, target)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".dir_in_the_way.")]
    assert leftovers == []
    assert os.path.isdir(target)


def test_light_modules_do_not_import_pydantic() -> None:
    """Workers import these; validation (pydantic) must stay in takopi.settings."""

    code = (
        "import sys\n"
        "import takopi.config, takopi.backends, takopi.backends_helpers, takopi.ids\n"
        "import takopi.plugins, takopi.engines, takopi.transports, takopi.lockfile\n"
        "import takopi.config_migrations, takopi.utils.json_state\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_settings')))\n"
        "import takopi.settings\n"
        "print('pydantic' in sys.modules)\n"
    )
    assert fresh_python(code)[-2:] == ["[]", "True"]


def test_api_exports_from_core_config_modules() -> None:
    import takopi.api as api
    from takopi import backends, backends_helpers, config, engines, ids, settings, transports

    assert api.EngineBackend is backends.EngineBackend
    assert api.EngineConfig is backends.EngineConfig
    assert api.SetupIssue is backends.SetupIssue
    assert api.install_issue is backends_helpers.install_issue
    assert api.list_backends is engines.list_backends
    assert api.TransportBackend is transports.TransportBackend
    assert api.SetupResult is transports.SetupResult
    assert api.ConfigError is config.ConfigError
    assert api.HOME_CONFIG_PATH is config.HOME_CONFIG_PATH
    assert api.read_config is config.read_config
    assert api.write_config is config.write_config
    assert api.load_settings is settings.load_settings
    assert api.RESERVED_COMMAND_IDS is ids.RESERVED_COMMAND_IDS
    issue = api.install_issue("codex", "npm i -g @openai/codex")
    assert issue == api.SetupIssue("install codex", ("$ npm i -g @openai/codex",))
    assert api.install_issue("x", None).lines == ()
    assert api.SetupResult().ok and not api.SetupResult(issues=[issue]).ok
