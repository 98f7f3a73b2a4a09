"""Runtime spec: engine health, default engine precedence, projects (core-config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from takopi.backends import EngineBackend
from takopi.config import ConfigError
from takopi.plugins import ENGINE_GROUP
from takopi.runners.mock import ScriptRunner
from takopi.runtime_loader import (
    EngineHealth,
    build_runtime_spec,
    resolve_default_engine,
)
from takopi.settings import validate_settings
from takopi.transport_runtime import TransportRuntime


def _build(config: dict[str, Any], config_path: Path, *, engine: str) -> ScriptRunner:
    if config.get("broken"):
        raise ConfigError(f"{engine}: 'broken' is not a valid option")
    return ScriptRunner([], engine=engine)


def _backend(engine: str, *, cli: str | None = None, always_fail: bool = False) -> EngineBackend:
    def build(config: dict[str, Any], config_path: Path) -> ScriptRunner:
        if always_fail:
            raise RuntimeError("cannot build at all")
        return _build(config, config_path, engine=engine)

    return EngineBackend(id=engine, build_runner=build, cli_cmd=cli, install_cmd=f"npm i {engine}")


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the executables a test creates."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def _install(bin_dir: Path, *names: str) -> None:
    for name in names:
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)


def _spec(data: dict[str, Any], tmp_path: Path, backends: list[EngineBackend], **kw: Any) -> Any:
    settings = validate_settings(data)
    return build_runtime_spec(
        settings=settings, config_path=tmp_path / "takopi.toml", backends=backends, **kw
    )


def test_all_engines_ok(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha", "beta-cli")
    spec = _spec(
        {
            "default_engine": "beta",
            "watch_config": True,
            "projects": {"web": {"path": "web", "default_engine": "alpha"}},
            "plugins": {"enabled": ["takopi-x"], "run": {"timeout": 5}},
        },
        tmp_path,
        [_backend("alpha"), _backend("beta", cli="beta-cli")],
    )
    assert spec.default_engine == "beta"
    assert spec.health == (EngineHealth("alpha", "ok"), EngineHealth("beta", "ok"))
    runtime = spec.to_runtime()
    assert isinstance(runtime, TransportRuntime)
    assert runtime.available_engine_ids() == ("alpha", "beta")
    assert runtime.missing_engine_ids() == ()
    assert runtime.default_engine == "beta"
    assert runtime.watch_config is True
    assert runtime.allowlist == ("takopi-x",)
    assert runtime.plugin_config("run") == {"timeout": 5}
    assert runtime.project_aliases() == ("web",)
    assert runtime.config_path == tmp_path / "takopi.toml"
    assert spec.transport_id == "telegram"


def test_default_engine_precedence(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "codex", "claude", "pi")
    backends = [_backend("codex"), _backend("claude"), _backend("pi")]
    assert _spec({}, tmp_path, backends).default_engine == "codex"
    assert _spec({"default_engine": "claude"}, tmp_path, backends).default_engine == "claude"
    spec = _spec({"default_engine": "claude"}, tmp_path, backends, default_engine_override="pi")
    assert spec.default_engine == "pi"
    assert resolve_default_engine(override=None, settings=None, engine_ids=["codex"]) == "codex"


def test_unknown_default_engine(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha", "beta")
    with pytest.raises(ConfigError) as info:
        _spec({"default_engine": "gamma"}, tmp_path, [_backend("beta"), _backend("alpha")])
    assert str(info.value) == "Unknown default engine 'gamma'. Available: alpha, beta."
    with pytest.raises(ConfigError, match=r"^Unknown default engine 'zzz'\. Available: alpha"):
        _spec({}, tmp_path, [_backend("alpha")], default_engine_override="zzz")


def test_bad_config_rebuilds_with_defaults(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha", "beta", "gamma")
    with capture_logs() as logs:
        spec = _spec(
            {"default_engine": "alpha", "beta": {"broken": True}, "gamma": "not-a-table"},
            tmp_path,
            [_backend("alpha"), _backend("beta"), _backend("gamma")],
        )
    health = {h.engine: h for h in spec.health}
    assert health["beta"] == EngineHealth(
        "beta", "bad_config", "beta: 'broken' is not a valid option"
    )
    assert health["gamma"].status == "bad_config"
    assert health["gamma"].issue == (
        f"Invalid `gamma` config in {tmp_path / 'takopi.toml'}; expected a table."
    )
    runtime = spec.to_runtime()
    assert runtime.available_engine_ids() == ("alpha", "beta", "gamma")
    warnings = [e for e in logs if e["event"] == "setup.warning"]
    assert sorted(e["engine"] for e in warnings) == ["beta", "gamma"]


def test_load_error_is_left_out(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha", "beta")
    spec = _spec(
        {"default_engine": "alpha"},
        tmp_path,
        [_backend("alpha"), _backend("beta", always_fail=True)],
    )
    assert EngineHealth("beta", "load_error", "RuntimeError: cannot build at all") in spec.health
    assert spec.router.engine_ids == ("alpha",)


def test_missing_cli_is_kept_but_unavailable(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha")
    spec = _spec({"default_engine": "alpha"}, tmp_path, [_backend("alpha"), _backend("beta")])
    assert EngineHealth("beta", "missing_cli", "beta not found on PATH (install: npm i beta)") in (
        spec.health
    )
    runtime = spec.to_runtime()
    assert runtime.available_engine_ids() == ("alpha",)
    assert runtime.missing_engine_ids() == ("beta",)


@pytest.mark.parametrize(
    ("config", "backend", "issue"),
    [
        ({}, _backend("alpha"), "alpha not found on PATH (install: npm i alpha)"),
        ({"alpha": {"broken": 1}}, None, "alpha: 'broken' is not a valid option"),
        ({}, _backend("alpha", always_fail=True), "RuntimeError: cannot build at all"),
    ],
)
def test_default_engine_must_be_healthy(
    tmp_path: Path,
    bin_dir: Path,
    config: dict[str, Any],
    backend: EngineBackend | None,
    issue: str,
) -> None:
    if backend is None:
        _install(bin_dir, "alpha")
        backend = _backend("alpha")
    with pytest.raises(ConfigError) as info:
        _spec({"default_engine": "alpha", **config}, tmp_path, [backend])
    assert str(info.value) == f"Default engine 'alpha' unavailable: {issue}"


def test_projects_are_validated_against_engine_ids(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha")
    with pytest.raises(ConfigError, match="aliases must not match engine ids"):
        _spec(
            {"default_engine": "alpha", "projects": {"Alpha": {"path": "/a"}}},
            tmp_path,
            [_backend("alpha")],
        )


def test_apply_updates_runtime_in_place(tmp_path: Path, bin_dir: Path) -> None:
    _install(bin_dir, "alpha", "beta")
    backends = [_backend("alpha"), _backend("beta")]
    runtime = _spec({"default_engine": "alpha"}, tmp_path, backends).to_runtime()
    new = _spec(
        {"default_engine": "beta", "projects": {"p": {"path": "/p"}}, "plugins": {"x": {"k": 1}}},
        tmp_path,
        backends,
    )
    new.apply(runtime)
    assert runtime.default_engine == "beta"
    assert runtime.project_aliases() == ("p",)
    assert runtime.plugin_config("x") == {"k": 1}


ENGINE_MODULE = """
from takopi.backends import EngineBackend
from takopi.runners.mock import ScriptRunner

BACKEND = EngineBackend(id="fakeeng", build_runner=lambda c, p: ScriptRunner([], engine="fakeeng"),
                        cli_cmd="fakeeng-cli")
"""


def test_discovers_installed_backends(fake_dists: Any, tmp_path: Path, bin_dir: Path) -> None:
    fake_dists.add(
        "takopi-fakeeng",
        {ENGINE_GROUP: {"fakeeng": "cc_rl_fake:BACKEND", "brokeneng": "cc_rl_broken:BACKEND"}},
        {"cc_rl_fake": ENGINE_MODULE, "cc_rl_broken": "raise ImportError('no deps')\n"},
    )
    _install(bin_dir, "fakeeng-cli")
    settings = validate_settings({"default_engine": "fakeeng"})
    spec = build_runtime_spec(settings=settings, config_path=tmp_path / "takopi.toml")
    health = {h.engine: h for h in spec.health}
    assert health["fakeeng"] == EngineHealth("fakeeng", "ok")
    assert health["brokeneng"].status == "load_error"
    assert "ImportError: no deps" in (health["brokeneng"].issue or "")
    assert spec.default_engine == "fakeeng"
    assert "codex" in health  # built-in engines are discovered too
    # the allowlist from [plugins] enabled hides other distributions' engines
    only = validate_settings({"plugins": {"enabled": ["nobody"]}})
    with pytest.raises(ConfigError, match=r"^Unknown default engine 'fakeeng'\. Available: "):
        build_runtime_spec(
            settings=only, config_path=tmp_path / "t.toml", default_engine_override="fakeeng"
        )
