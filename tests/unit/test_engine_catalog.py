"""Which engines exist after the start-up load check (supervisor.engine_catalog) and the demo
rule shared with the in-process runtime and the CLI (runtime_loader.demo_engine_wanted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from takopi.backends import EngineBackend
from takopi.cli.engines_info import fallback_default_engine
from takopi.config import ConfigError
from takopi.protocol import EngineLoaded, LoadFailed
from takopi.runners.mock import ScriptRunner
from takopi.runtime_loader import build_runtime_spec, demo_engine_wanted
from takopi.settings import validate_settings
from takopi.supervisor.engine_catalog import EngineCatalog
from takopi.supervisor.options import SupervisorOptions


def _ok(engine: str, status: Any = "ok", issue: str | None = None) -> EngineLoaded:
    return EngineLoaded(engine=engine, status=status, issue=issue)


@pytest.mark.parametrize(
    ("real", "chosen", "aliases", "wanted"),
    [
        (False, "codex", [], True),
        (True, "codex", [], False),
        (True, "demo", [], True),
        (False, "codex", ["Demo"], False),
        (True, "demo", [" demo "], False),
        (False, "codex", ["webapp"], True),
    ],
)
def test_demo_engine_wanted(real: bool, chosen: str, aliases: list[str], wanted: bool) -> None:
    assert (
        demo_engine_wanted(
            real_engine_available=real, chosen_default=chosen, project_aliases=aliases
        )
        is wanted
    )


def test_catalog_leaves_load_errors_out_and_keeps_missing_clis() -> None:
    catalog = EngineCatalog()
    catalog.decide(
        {
            "codex": _ok("codex", "missing_cli", "codex not found on PATH"),
            "broken": LoadFailed("Failed to load engine 'broken': ImportError: x", 3),
            "claude": _ok("claude", "bad_config", "invalid [claude] config"),
            "demo": _ok("demo"),
        },
        chosen_default="codex",
        project_aliases=[],
    )
    assert catalog.ids == ("claude", "codex")  # claude can run: demo is not needed
    assert catalog.failures() == {"broken": "Failed to load engine 'broken': ImportError: x"}
    assert [e for e in catalog.ids if catalog.runnable(e)] == ["claude"]
    assert catalog.left_out == {"demo": "a real engine is available"}
    rows = {row["id"]: row for row in catalog.describe()}
    assert rows["broken"] == {
        "id": "broken",
        "status": "load_error",
        "issue": "Failed to load engine 'broken': ImportError: x",
        "offered": False,
    }
    assert rows["demo"]["offered"] is False and rows["demo"]["issue"] == (
        "a real engine is available"
    )


def test_catalog_offers_demo_when_nothing_real_can_run_unless_an_alias_takes_it() -> None:
    results = {"codex": _ok("codex", "missing_cli", "missing"), "demo": _ok("demo")}
    catalog = EngineCatalog()
    catalog.decide(results, chosen_default="codex", project_aliases=["webapp"])
    assert catalog.ids == ("codex", "demo")
    catalog.decide(results, chosen_default="codex", project_aliases=["DEMO"])
    assert catalog.ids == ("codex",)
    assert catalog.left_out == {"demo": "a [projects.demo] alias is configured"}


def test_catalog_state_restores_a_rejected_decision() -> None:
    catalog = EngineCatalog()
    catalog.decide({"codex": _ok("codex")}, chosen_default="codex", project_aliases=[])
    saved = catalog.state()
    catalog.decide({"codex": LoadFailed("gone", 3)}, chosen_default="codex", project_aliases=[])
    assert catalog.ids == ()
    catalog.restore(saved)
    assert catalog.ids == ("codex",) and catalog.loaded("codex") == _ok("codex")


def test_a_worker_load_replaces_what_the_probe_said() -> None:
    catalog = EngineCatalog()
    catalog.decide(
        {"codex": _ok("codex", "missing_cli", "missing")},
        chosen_default="codex",
        project_aliases=[],
    )
    catalog.record("codex", _ok("codex"))
    assert catalog.runnable("codex")


def _backend(engine: str, cli: str) -> EngineBackend:
    return EngineBackend(
        id=engine, build_runner=lambda c, p: ScriptRunner([], engine=engine), cli_cmd=cli
    )


def test_in_process_runtime_applies_the_demo_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    (bin_dir / "realcli").write_text("#!/bin/sh\n")
    (bin_dir / "realcli").chmod(0o755)
    (bin_dir / "democli").write_text("#!/bin/sh\n")
    (bin_dir / "democli").chmod(0o755)
    backends = [_backend("real", "realcli"), _backend("demo", "democli")]
    path = tmp_path / "takopi.toml"
    project = tmp_path / "p"
    project.mkdir()

    spec = build_runtime_spec(
        settings=validate_settings({"default_engine": "real"}), config_path=path, backends=backends
    )
    assert spec.router.engine_ids == ("real",)
    # The alias loads (it used to be refused as an engine id).
    spec = build_runtime_spec(
        settings=validate_settings(
            {"default_engine": "real", "projects": {"demo": {"path": str(project)}}}
        ),
        config_path=path,
        backends=backends,
    )
    assert spec.router.engine_ids == ("real",) and spec.projects.projects["demo"].path == project
    (bin_dir / "realcli").unlink()  # no real engine can run: demo stands in
    spec = build_runtime_spec(
        settings=validate_settings({"default_engine": "demo"}), config_path=path, backends=backends
    )
    assert spec.router.engine_ids == ("demo", "real")


def test_cli_demo_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ids = ["claude", "codex", "demo", "opencode", "pi"]
    assert fallback_default_engine(ids) == "demo"
    assert fallback_default_engine(ids, project_aliases=["demo"]) is None
    # An engine plugin is installed: it may run, so the reference fallback stays.
    assert fallback_default_engine([*ids, "kimi"]) is None


@pytest.mark.parametrize("key", ["engine_idle_s", "helper_idle_s"])
@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (2.5, 2.5), (600, 600.0)])
def test_idle_settings(key: str, value: float, expected: float) -> None:
    options = SupervisorOptions()
    options.apply_table({key: value})
    assert getattr(options, key) == expected


@pytest.mark.parametrize("key", ["engine_idle_s", "helper_idle_s"])
@pytest.mark.parametrize("value", [-1, True, "10"])
def test_idle_settings_reject_bad_values(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        SupervisorOptions().apply_table({key: value})
