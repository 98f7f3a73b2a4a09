"""Config hot reload by mtime polling (core-config)."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from takopi.backends import EngineBackend
from takopi.config_watch import ConfigReload, watch_config
from takopi.runners.mock import ScriptRunner
from takopi.runtime_loader import build_runtime_spec
from takopi.settings import load_settings

pytestmark = pytest.mark.anyio

POLL = 0.02
BACKENDS = [
    EngineBackend(
        id=e,
        build_runner=functools.partial(lambda e, c, p: ScriptRunner([], engine=e), e),
        cli_cmd="sh",
    )
    for e in ("alpha", "beta")
]
build_spec = functools.partial(build_runtime_spec, backends=BACKENDS)

BASE = """
default_engine = "alpha"
transport = "console"
[transports.console]
prompt = "> "
"""


def _write(path: Path, text: str) -> None:
    """Write ``text`` so that the change is always visible to (mtime_ns, size) polling."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


async def _until(predicate: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(20):
        while not predicate():
            await anyio.sleep(POLL)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "takopi.toml"
    path.write_text(BASE)
    return path


def _runtime(config: Path) -> Any:
    settings, _ = load_settings(config)
    return build_spec(settings=settings, config_path=config).to_runtime()


@asynccontextmanager
async def watching(
    config: Path,
    runtime: Any,
    *,
    on_reload: Callable[[ConfigReload], Any] | None = None,
    build: Callable[..., Any] = build_spec,
) -> AsyncIterator[None]:
    """``watch_config`` running in the background (past its first poll) for the block."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            functools.partial(
                watch_config,
                config_path=config,
                runtime=runtime,
                on_reload=on_reload,
                poll_interval=POLL,
                build_spec=build,
            )
        )
        await anyio.sleep(POLL * 3)
        yield
        tg.cancel_scope.cancel()


async def test_edit_is_applied_in_place(config: Path) -> None:
    runtime = _runtime(config)
    reloads: list[ConfigReload] = []

    async def on_reload(reload: ConfigReload) -> None:
        reloads.append(reload)

    async with watching(config, runtime, on_reload=on_reload):
        _write(config, BASE.replace('"alpha"', '"beta"') + '\n[projects.web]\npath = "/w"\n')
        await _until(lambda: runtime.default_engine == "beta", "reload")
    assert runtime.project_aliases() == ("web",)
    assert len(reloads) == 1
    assert reloads[0].restart_required is False
    assert reloads[0].settings.default_engine == "beta"
    assert reloads[0].config_path == config.resolve()


async def test_invalid_config_keeps_old_runtime(config: Path) -> None:
    runtime = _runtime(config)
    reloads: list[ConfigReload] = []
    with capture_logs() as logs:
        # a sync callback works too
        async with watching(config, runtime, on_reload=reloads.append):
            _write(config, BASE + "\nwatch_config = [\n")  # malformed TOML
            await _until(lambda: any(e["event"] == "config.reload.failed" for e in logs), "fail")
            _write(config, BASE.replace('"alpha"', '"gamma"'))  # unknown engine
            await _until(
                lambda: sum(e["event"] == "config.reload.failed" for e in logs) == 2, "fail 2"
            )
            assert runtime.default_engine == "alpha"
            _write(config, BASE.replace('"alpha"', '"beta"'))
            await _until(lambda: runtime.default_engine == "beta", "recovered")
    failed = [e for e in logs if e["event"] == "config.reload.failed"]
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["error"].startswith("Malformed TOML in ")
    assert failed[1]["error"] == "Unknown default engine 'gamma'. Available: alpha, beta."
    assert len(reloads) == 1


async def test_transport_change_needs_restart(config: Path) -> None:
    runtime = _runtime(config)
    reloads: list[ConfigReload] = []
    async with watching(config, runtime, on_reload=reloads.append):
        _write(config, BASE.replace('"> "', '"$ "'))
        await _until(lambda: len(reloads) == 1, "reload")
    assert reloads[0].restart_required is True
    assert reloads[0].transport_changed is True


async def test_unchanged_signature_and_other_files_are_ignored(config: Path) -> None:
    runtime = _runtime(config)
    reloads: list[ConfigReload] = []
    async with watching(config, runtime, on_reload=reloads.append):
        # same content, same mtime: not a change
        st = config.stat()
        config.write_text(BASE)
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
        # another file in the same directory is not the config
        (config.parent / "other.toml").write_text('default_engine = "beta"\n')
        (config.parent / "takopi.toml.bak").write_text("garbage [")
        await anyio.sleep(POLL * 10)
        _write(config, BASE.replace('"alpha"', '"beta"'))
        await _until(lambda: len(reloads) >= 1, "reload")
        await anyio.sleep(POLL * 5)
    assert [r.settings.default_engine for r in reloads] == ["beta"]


async def test_missing_file_then_recreated(config: Path) -> None:
    runtime = _runtime(config)
    with capture_logs() as logs:
        async with watching(config, runtime):
            config.unlink()
            await _until(lambda: any(e["event"] == "config.reload.failed" for e in logs), "gone")
            await anyio.sleep(POLL * 5)
            _write(config, BASE.replace('"alpha"', '"beta"'))
            await _until(lambda: runtime.default_engine == "beta", "back")
    missing = [e for e in logs if e.get("error") == "config file missing"]
    assert len(missing) == 1  # logged once per state change


async def test_disabled_under_mutation_testing(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUTANT_UNDER_TEST", "1")
    with anyio.fail_after(5):
        await watch_config(config_path=config, runtime=object(), poll_interval=POLL)


class _RemoteRuntime:
    """Stands in for a worker's runtime proxy: no ``update``; has ``refresh``."""

    def __init__(self) -> None:
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1


async def test_remote_runtime_is_not_rebuilt_locally(config: Path) -> None:
    runtime = _RemoteRuntime()
    reloads: list[ConfigReload] = []
    built: list[Any] = []

    def spy_build(**kwargs: Any) -> Any:
        built.append(kwargs)
        return build_spec(**kwargs)

    async with watching(config, runtime, on_reload=reloads.append, build=spy_build):
        _write(config, BASE.replace('"alpha"', '"beta"'))
        await _until(lambda: len(reloads) == 1, "reload")
    assert built == []
    assert runtime.refreshed == 1
    assert reloads[0].runtime_spec is None
    assert reloads[0].settings.default_engine == "beta"
