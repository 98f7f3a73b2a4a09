"""Engine worker: hosts one ``EngineBackend`` and serves its runner over RPC.

Methods served (called by the supervisor; messages in :mod:`takopi.protocol`):

- ``load(EngineLoad)`` → :class:`~takopi.protocol.EngineLoaded` or
  :class:`~takopi.protocol.LoadFailed`. ``EngineLoaded.resume`` (the runner's ``resume_re``
  pattern, if it has one) lets callers answer ``is_resume_line`` / ``extract_resume`` without a
  round trip when the runner uses the default :class:`~takopi.runner.ResumeTokenMixin`
  implementations (``local_*`` flags).
- stream ``run(EngineRun)`` — the runner's events; ``set_run_base_dir(cwd)`` and
  ``apply_run_options(...)`` are in effect while the runner runs, so plugins reading those
  contextvars see the run's values.
- ``format_resume(token)``, ``extract_resume(text)``, ``is_resume_line(line)``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takopi.config import ConfigError
from takopi.logging import bind_run_context, clear_context, get_logger
from takopi.model import ResumeToken, TakopiEvent
from takopi.protocol import (
    EngineLoad,
    EngineLoaded,
    EngineRun,
    EngineStatus,
    LoadFailed,
    ResumeCodecInfo,
)
from takopi.protocol.snapshot import reads_back_token
from takopi.worker.codes import EX_CONFIG, EXIT_PLUGIN_FAILED

if TYPE_CHECKING:
    from takopi.rpc import Peer

log = get_logger(__name__)


def _uses_default(runner: Any, name: str) -> bool:
    from takopi.runner import ResumeTokenMixin

    return getattr(type(runner), name, None) is getattr(ResumeTokenMixin, name)


_SAMPLE_TOKENS = ("0123abcd-4567-4890-8abc-def012345678", "ses_0123abcd4567EF89", "0123abcd4567")
"""Tokens shaped like engines' (uuid-like, opencode's, bare hex): tried until one is the
engine's (its regex reads it back from the formatted line)."""


def _line_template(runner: Any, resume_re: Any) -> tuple[str, str] | None:
    """``(prefix, suffix)`` such that ``prefix + token + suffix`` is the runner's resume line,
    when formatting a sample token shows exactly that and its regex reads the token back."""
    from takopi.model import ResumeToken

    engine = getattr(runner, "engine", None)
    if not isinstance(engine, str):
        return None
    for sample in _SAMPLE_TOKENS:
        try:
            line = runner.format_resume(ResumeToken(engine=engine, value=sample))
            fits = isinstance(line, str) and reads_back_token(resume_re, line, sample)
        except Exception:  # a plugin's code: anything may go wrong, the template is optional
            return None
        if not fits:
            continue
        if line.count(sample) != 1:
            return None
        prefix, suffix = line.split(sample)
        return prefix, suffix
    return None


def _resume_codec(runner: Any) -> ResumeCodecInfo | None:
    """The runner's resume regex (and line template), if it has one."""
    resume_re = getattr(runner, "resume_re", None)
    pattern = getattr(resume_re, "pattern", None)
    if not isinstance(pattern, str):
        return None
    template = _line_template(runner, resume_re)
    return ResumeCodecInfo(
        pattern=pattern,
        flags=int(getattr(resume_re, "flags", 0)),
        local_line=_uses_default(runner, "is_resume_line"),
        local_extract=_uses_default(runner, "extract_resume"),
        line_prefix=template[0] if template else None,
        line_suffix=template[1] if template else "",
    )


def load_engine(
    plugin_id: str, config: dict[str, Any], config_path: Path
) -> tuple[Any, EngineLoaded | LoadFailed]:
    """Import engine ``plugin_id`` and build its runner from ``config``: ``(runner, answer)``.

    An invalid table gives ``bad_config`` (the runner is rebuilt with ``{}``), a CLI missing
    from ``PATH`` gives ``missing_cli``; an import or build failure is a :class:`LoadFailed`
    (``EX_CONFIG`` when even the defaults are rejected: restarting cannot help). Used by the
    engine worker's ``load`` and by the engine probe (:mod:`takopi.worker.probe`)."""
    from takopi.engines import get_backend

    try:
        backend = get_backend(plugin_id)
    except ConfigError as exc:
        return None, _failed(plugin_id, str(exc), EXIT_PLUGIN_FAILED)
    status: EngineStatus = "ok"
    issue: str | None = None
    try:
        runner = backend.build_runner(dict(config), config_path)
    except ConfigError as exc:
        if not config:
            return None, _failed(plugin_id, f"invalid [{plugin_id}] config: {exc}", EX_CONFIG)
        status, issue = "bad_config", f"invalid [{plugin_id}] config: {exc}"
        log.warning("engine.bad_config", engine=plugin_id, error=str(exc))
        try:
            runner = backend.build_runner({}, config_path)
        except Exception as exc2:
            return None, _failed(plugin_id, f"{type(exc2).__name__}: {exc2}", EX_CONFIG)
    except Exception as exc:
        error = f"build_runner failed: {type(exc).__name__}: {exc}"
        return None, _failed(plugin_id, error, EXIT_PLUGIN_FAILED)
    cli_cmd = backend.cli_cmd or backend.id
    cli_path = shutil.which(cli_cmd)
    if cli_path is None and status == "ok":
        status, issue = "missing_cli", f"{cli_cmd} not found on PATH"
    loaded = EngineLoaded(
        engine=str(getattr(runner, "engine", plugin_id)),
        status=status,
        issue=issue,
        cli_cmd=cli_cmd,
        install_cmd=backend.install_cmd,
        cli_path=cli_path,
        resume=_resume_codec(runner),
    )
    return runner, loaded


def _failed(plugin_id: str, error: str, code: int) -> LoadFailed:
    log.error("worker.failed", engine=plugin_id, error=error)
    return LoadFailed(error=error, exit_code=code)


class EngineHost:
    """Loads the engine plugin on ``load`` and serves its runner."""

    kind = "engine"

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self.runner: Any = None
        self.exit_code: int | None = None

    def register(self, peer: Peer) -> None:
        """Install this host's RPC handlers on ``peer``."""
        peer.register("load", self.load)
        peer.register_stream("run", self.run)
        peer.register("format_resume", self.format_resume)
        peer.register("extract_resume", self.extract_resume)
        peer.register("is_resume_line", self.is_resume_line)

    async def load(self, request: EngineLoad) -> EngineLoaded | LoadFailed:
        """Import the backend and build the runner (invalid config ⇒ retry with defaults)."""
        path = Path(request.config_path) if request.config_path else Path.cwd() / "takopi.toml"
        self.runner, result = load_engine(self.plugin_id, dict(request.config or {}), path)
        if isinstance(result, LoadFailed):
            self.exit_code = result.exit_code
            return result
        from takopi.utils.memory import trim_memory

        trim_memory()
        return result

    def _need_runner(self) -> Any:
        if self.runner is None:
            raise RuntimeError(f"engine {self.plugin_id!r} is not loaded")
        return self.runner

    async def run(self, request: EngineRun) -> AsyncIterator[TakopiEvent]:
        """Run the prompt with the run's cwd and overrides in the plugin-visible contextvars."""
        from takopi.runners.run_options import EngineRunOptions, apply_run_options
        from takopi.utils.paths import reset_run_base_dir, set_run_base_dir

        runner = self._need_runner()
        model, reasoning = request.model, request.reasoning
        options = (
            EngineRunOptions(model=model, reasoning=reasoning) if (model or reasoning) else None
        )
        base_token = set_run_base_dir(request.cwd)
        bind_run_context(run_id=request.run_id, engine=self.plugin_id, cwd=request.cwd)
        try:
            with apply_run_options(options):
                iterator = runner.run(request.prompt, request.resume)
                try:
                    async for event in iterator:
                        yield event
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()
        finally:
            clear_context()
            reset_run_base_dir(base_token)
            from takopi.utils.memory import trim_memory

            trim_memory()

    async def format_resume(self, token: ResumeToken) -> str:
        """The runner's resume line for ``token``."""
        return str(self._need_runner().format_resume(token))

    async def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The runner's resume token in ``text``."""
        return self._need_runner().extract_resume(text)  # type: ignore[no-any-return]

    async def is_resume_line(self, line: str) -> bool:
        """Whether ``line`` is one of the runner's resume lines."""
        return bool(self._need_runner().is_resume_line(line))


__all__ = ["EngineHost", "load_engine"]
