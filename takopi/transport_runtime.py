"""The façade transports use to resolve messages, engines, contexts and working directories.

:class:`TransportRuntime` is a plain object built from explicit pieces (router, projects,
allowlist, config path, plugin configs). The supervisor hosts it; a transport worker gets a proxy
with the same method names, so every method here must take and return plain values
(``RunContext``, ``ResumeToken``, strings, tuples, paths) — except ``resolve_runner().runner``,
which the proxy replaces with a runner proxy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from takopi.context import RunContext
from takopi.directives import format_context_line, parse_context_line, parse_directives
from takopi.model import EngineId, ResumeToken
from takopi.projects import ProjectsConfig
from takopi.router import AutoRouter
from takopi.worktrees import resolve_run_cwd

if TYPE_CHECKING:
    from takopi.runner import Runner

CONTINUE_PROMPT = "continue"


@dataclass(frozen=True, slots=True)
class ResolvedMessage:
    """A message after directives, ``ctx:`` footers and resume lines were resolved.

    ``engine_override`` is the engine to use unless a resume token decides: the ``/engine``
    directive, else the resolved project's ``default_engine``. ``directive_engine`` is only the
    directive (transports with chat/topic engine defaults rank those above the project default).
    ``context_source`` says where the context came from: ``reply_ctx``, ``directives``,
    ``ambient``, ``default_project`` or ``none``.
    """

    prompt: str
    resume_token: ResumeToken | None
    engine_override: EngineId | None
    context: RunContext | None
    context_source: str = "none"
    directive_engine: EngineId | None = None


@dataclass(frozen=True, slots=True)
class ResolvedRunner:
    """The runner selected for a run, and whether it can run."""

    engine: EngineId
    runner: Runner
    available: bool
    issue: str | None = None


class _Keep:
    """Marker for ``update()`` arguments that keep their current value."""


_KEEP: Final = _Keep()


def strip_resume_lines(text: str, *, is_resume_line: Any) -> str:
    """Drop every line ``is_resume_line`` accepts; an empty result becomes ``"continue"``."""
    kept = [line for line in text.splitlines() if not is_resume_line(line)]
    return "\n".join(kept).strip() or CONTINUE_PROMPT


def _normalize_allowlist(allowlist: Iterable[str] | None) -> tuple[str, ...] | None:
    if allowlist is None:
        return None
    return tuple(sorted({str(item) for item in allowlist}))


def _copy_plugin_configs(
    plugin_configs: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    if not plugin_configs:
        return {}
    return {str(key): copy.deepcopy(dict(value)) for key, value in plugin_configs.items()}


class TransportRuntime:
    """Routing, projects and plugin settings as seen by a transport."""

    __slots__ = (
        "_allowlist",
        "_config_path",
        "_plugin_configs",
        "_projects",
        "_router",
        "_watch_config",
        "revision",
    )

    def __init__(
        self,
        *,
        router: AutoRouter,
        projects: ProjectsConfig | None = None,
        allowlist: Iterable[str] | None = None,
        config_path: Path | None = None,
        plugin_configs: Mapping[str, Mapping[str, Any]] | None = None,
        watch_config: bool = False,
    ) -> None:
        self._router = router
        self._projects = projects if projects is not None else ProjectsConfig()
        self._allowlist = _normalize_allowlist(allowlist)
        self._config_path = Path(config_path) if config_path is not None else None
        self._plugin_configs = _copy_plugin_configs(plugin_configs)
        self._watch_config = bool(watch_config)
        # bumped by every update(): transports watch it to refresh what they show
        self.revision = 0

    def update(
        self,
        *,
        router: AutoRouter | _Keep = _KEEP,
        projects: ProjectsConfig | _Keep = _KEEP,
        allowlist: Iterable[str] | _Keep | None = _KEEP,
        config_path: Path | _Keep | None = _KEEP,
        plugin_configs: Mapping[str, Mapping[str, Any]] | _Keep | None = _KEEP,
        watch_config: bool | _Keep = _KEEP,
    ) -> None:
        """Hot reload in place: replace the given pieces, keep the others."""
        if not isinstance(router, _Keep):
            self._router = router
        if not isinstance(projects, _Keep):
            self._projects = projects
        if not isinstance(allowlist, _Keep):
            self._allowlist = _normalize_allowlist(allowlist)
        if not isinstance(config_path, _Keep):
            self._config_path = Path(config_path) if config_path is not None else None
        if not isinstance(plugin_configs, _Keep):
            self._plugin_configs = _copy_plugin_configs(plugin_configs)
        if not isinstance(watch_config, _Keep):
            self._watch_config = bool(watch_config)
        self.revision += 1

    # -- plain attributes -------------------------------------------------------------------

    @property
    def default_engine(self) -> EngineId:
        """The global default engine."""
        return self._router.default_engine

    @property
    def engine_ids(self) -> tuple[EngineId, ...]:
        """Every configured engine id, sorted."""
        return self._router.engine_ids

    @property
    def allowlist(self) -> tuple[str, ...] | None:
        """Plugin distribution allowlist (``[plugins] enabled``); None = everything."""
        return self._allowlist

    @property
    def config_path(self) -> Path | None:
        """The active ``takopi.toml``, when known."""
        return self._config_path

    @property
    def watch_config(self) -> bool:
        """Whether config hot reload is enabled."""
        return self._watch_config

    # -- engines ----------------------------------------------------------------------------

    def available_engine_ids(self) -> tuple[EngineId, ...]:
        """Engines that can run, sorted."""
        return tuple(entry.engine for entry in self._router.available_entries)

    def missing_engine_ids(self) -> tuple[EngineId, ...]:
        """Engines whose CLI is not installed."""
        return self.engine_ids_with_status("missing_cli")

    def engine_ids_with_status(self, status: str) -> tuple[EngineId, ...]:
        """Engines whose status is ``status`` (ok, missing_cli, bad_config, load_error)."""
        return tuple(entry.engine for entry in self._router.entries if entry.status == status)

    def resolve_engine(
        self, *, engine_override: EngineId | None, context: RunContext | None
    ) -> EngineId:
        """Override, else the context project's default engine, else the global default."""
        if engine_override:
            return engine_override
        if context is not None and context.project:
            project_engine = self.project_default_engine(context.project)
            if project_engine:
                return project_engine
        return self._router.default_engine

    def resolve_runner(
        self, *, resume_token: ResumeToken | None, engine_override: EngineId | None
    ) -> ResolvedRunner:
        """The runner for a run: the token's engine wins, then the override, then the default.

        Raises :class:`~takopi.router.RunnerUnavailableError` for an engine that is not
        configured at all; unavailable-but-known engines come back with ``available=False``.
        """
        if resume_token is not None:
            entry = self._router.entry_for_engine(resume_token.engine)
        else:
            entry = self._router.entry_for_engine(engine_override)
        return ResolvedRunner(
            engine=entry.engine, runner=entry.runner, available=entry.available, issue=entry.issue
        )

    def is_resume_line(self, line: str) -> bool:
        """True when any engine recognises ``line`` as a resume line."""
        return self._router.is_resume_line(line)

    # -- projects and contexts --------------------------------------------------------------

    def project_aliases(self) -> tuple[str, ...]:
        """Project aliases as written in the config."""
        return tuple(self._projects.aliases())

    def normalize_project_key(self, value: str) -> str | None:
        """The project key for an alias (any case), or None when unknown."""
        if not isinstance(value, str):
            return None
        key = value.strip().lower()
        return key if key in self._projects.projects else None

    def project_alias_for_key(self, key: str) -> str:
        """The alias as configured for a project key (the key itself when unknown)."""
        project = self._projects.resolve(key)
        return project.alias if project is not None else key

    def project_default_engine(self, key: str | None) -> EngineId | None:
        """The project's ``default_engine``, if any."""
        project = self._projects.resolve(key)
        return project.default_engine if project is not None else None

    def default_context_for_chat(self, chat_id: int | str | None) -> RunContext | None:
        """The context of the project bound to ``chat_id`` (``projects.<a>.chat_id``)."""
        key = self._projects.project_for_chat(chat_id)
        return RunContext(project=key) if key is not None else None

    def format_context_line(self, context: RunContext | None) -> str | None:
        """`` `ctx: alias @branch` `` for a context with a project, else None."""
        return format_context_line(context, projects=self._projects)

    def resolve_run_cwd(self, context: RunContext | None) -> Path | None:
        """The directory a run works in (creating a worktree if needed).

        Raises :class:`~takopi.config.ConfigError` for unknown projects and worktree problems.
        """
        return resolve_run_cwd(context, projects=self._projects)

    def plugin_config(self, plugin_id: str) -> dict[str, Any]:
        """A copy of ``[plugins.<plugin_id>]`` (empty when absent)."""
        return copy.deepcopy(self._plugin_configs.get(plugin_id, {}))

    # -- messages ---------------------------------------------------------------------------

    def resolve_message(
        self,
        *,
        text: str,
        reply_text: str | None = None,
        ambient_context: RunContext | None = None,
        chat_id: int | str | None = None,
    ) -> ResolvedMessage:
        """Parse directives, ``ctx:`` footers and resume lines of an incoming message.

        Context precedence: the replied-to message's ``ctx:`` line, then directives (a
        directive branch without project uses the ambient project; a directive project keeps
        the ambient branch only when it is the ambient project), then the ambient context, then
        the chat's bound project or the global ``default_project``. Raises
        :class:`~takopi.directives.DirectiveError` for contradictory directives or an unknown
        project in a ``ctx:`` line.
        """
        router = self._router
        projects = self._projects
        directives = parse_directives(text or "", engine_ids=router.engine_ids, projects=projects)
        reply_ctx = parse_context_line(reply_text, projects=projects)
        resume_token = router.resolve_resume(directives.prompt, reply_text)
        prompt = strip_resume_lines(directives.prompt, is_resume_line=router.is_resume_line)

        chat_project = projects.project_for_chat(chat_id)
        default_project = chat_project or projects.default_project
        ambient = ambient_context
        if ambient is not None and not (ambient.project or ambient.branch):
            ambient = None

        context: RunContext | None
        if reply_ctx is not None:
            context, source = reply_ctx, "reply_ctx"
        elif directives.project is not None or directives.branch is not None:
            project = directives.project
            branch = directives.branch
            if project is None:
                project = ambient.project if ambient is not None else default_project
            if branch is None and ambient is not None and ambient.project == project:
                branch = ambient.branch
            context, source = RunContext(project=project, branch=branch), "directives"
        elif ambient is not None:
            context, source = ambient, "ambient"
        elif default_project is not None:
            context, source = RunContext(project=default_project), "default_project"
        else:
            context, source = None, "none"

        engine_override = directives.engine
        if engine_override is None and context is not None:
            engine_override = self.project_default_engine(context.project)
        return ResolvedMessage(
            prompt=prompt,
            resume_token=resume_token,
            engine_override=engine_override,
            context=context,
            context_source=source,
            directive_engine=directives.engine,
        )


__all__ = [
    "CONTINUE_PROMPT",
    "ResolvedMessage",
    "ResolvedRunner",
    "TransportRuntime",
    "strip_resume_lines",
]
