"""Message directives (``/engine``, ``/project``, ``@branch``) and the ``ctx:`` footer line.

Directives are only read from the first non-empty line of a message: leading tokens are
consumed while they name an engine, a project or a branch, and parsing stops at the first other
token. The ``ctx:`` footer records a run's project/branch in the final message so that a reply
continues in the same place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from takopi.context import RunContext
from takopi.model import EngineId
from takopi.projects import ProjectsConfig


class DirectiveError(RuntimeError):
    """A message's directives are contradictory or name something unknown.

    The message is meant for the user as-is (transports reply ``error:\\n<message>``).
    """


@dataclass(frozen=True, slots=True)
class ParsedDirectives:
    """The result of :func:`parse_directives`.

    ``project`` is the project *key* (lower-cased alias) and ``engine`` the engine id as
    configured; both are None when no such directive was given.
    """

    prompt: str
    engine: EngineId | None = None
    project: str | None = None
    branch: str | None = None


def _project_keys(projects: ProjectsConfig | Iterable[str] | None) -> dict[str, str]:
    """Map lower-cased alias -> project key, whatever shape the caller passed."""
    if projects is None:
        return {}
    if isinstance(projects, ProjectsConfig):
        return {key.lower(): key for key in projects.projects}
    return {str(alias).lower(): str(alias).lower() for alias in projects}


def _command_name(token: str) -> str:
    """``/Codex@my_bot`` -> ``codex``: drop the slash and a Telegram ``@bot`` suffix."""
    name = token[1:]
    if "@" in name:
        name = name.split("@", 1)[0]
    return name.lower()


def parse_directives(
    text: str,
    *,
    engine_ids: Iterable[EngineId],
    projects: ProjectsConfig | Iterable[str] | None,
) -> ParsedDirectives:
    """Strip leading directives from the first non-empty line of ``text``.

    Raises :class:`DirectiveError` for a second engine, project or branch directive.
    """
    if not text:
        return ParsedDirectives(prompt="")
    lines = text.splitlines()
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if index is None:
        return ParsedDirectives(prompt=text.strip())

    engines = {engine.lower(): engine for engine in engine_ids}
    project_keys = _project_keys(projects)
    tokens = lines[index].split()

    engine: EngineId | None = None
    project: str | None = None
    branch: str | None = None
    consumed = 0
    for token in tokens:
        if token.startswith("/"):
            name = _command_name(token)
            if name and name in engines:
                if engine is not None:
                    raise DirectiveError("multiple engine directives")
                engine = engines[name]
            elif name and name in project_keys:
                if project is not None:
                    raise DirectiveError("multiple project directives")
                project = project_keys[name]
            else:
                break
        elif token.startswith("@") and len(token) > 1:
            if branch is not None:
                raise DirectiveError("multiple @branch directives")
            branch = token[1:]
        else:
            break
        consumed += 1

    if consumed == 0:
        return ParsedDirectives(prompt=text.strip())
    if consumed < len(tokens):
        lines[index] = " ".join(tokens[consumed:])
    else:
        del lines[index]
    prompt = "\n".join(lines).strip()
    return ParsedDirectives(prompt=prompt, engine=engine, project=project, branch=branch)


def format_context_line(
    context: RunContext | None, *, projects: ProjectsConfig | None
) -> str | None:
    """The footer line for a run's context (`` `ctx: alias @branch` ``), or None."""
    if context is None or not context.project:
        return None
    alias = context.project
    if projects is not None:
        project = projects.resolve(context.project)
        if project is not None:
            alias = project.alias
    if context.branch:
        return f"`ctx: {alias} @{context.branch}`"
    return f"`ctx: {alias}`"


def _unquote(line: str) -> str:
    """Drop inline-code backticks around a footer line (either side may be missing)."""
    stripped = line.strip()
    if stripped.startswith("`"):
        stripped = stripped[1:]
    if stripped.endswith("`"):
        stripped = stripped[:-1]
    return stripped.strip()


def _spaced_alias_prefix(body: str, projects: ProjectsConfig | None) -> str | None:
    """The configured alias containing whitespace (``[projects."my app"]``) that ``body``
    starts with, longest first; None when there is none."""
    if projects is None:
        return None
    names = {
        name
        for key, project in projects.projects.items()
        for name in (project.alias, key)
        if any(ch.isspace() for ch in name)
    }
    for name in sorted(names, key=len, reverse=True):
        head, rest = body[: len(name)], body[len(name) :]
        if head.lower() == name.lower() and (not rest or rest[0].isspace()):
            return head
    return None


def _parse_ctx_body(
    body: str, projects: ProjectsConfig | None = None
) -> tuple[str, str | None] | None:
    """``proj @branch`` / ``proj @ branch`` / ``proj`` -> (project, branch)."""
    body = body.strip()
    spaced = _spaced_alias_prefix(body, projects)
    if spaced is not None:
        project, tokens = spaced, ["", *body[len(spaced) :].split()]
    else:
        tokens = body.split()
        if not tokens:
            return None
        project = tokens[0]
    branch: str | None = None
    if len(tokens) >= 2:
        if tokens[1] == "@":
            branch = tokens[2] if len(tokens) >= 3 else None
        elif tokens[1].startswith("@"):
            branch = tokens[1][1:] or None
    return project, branch


def parse_context_line(text: str | None, *, projects: ProjectsConfig | None) -> RunContext | None:
    """Find the ``ctx:`` footer in a replied-to message (the last one wins).

    Raises :class:`DirectiveError` when the footer names a project that is not configured.
    """
    if not text:
        return None
    found: RunContext | None = None
    for line in text.splitlines():
        candidate = _unquote(line)
        if candidate[:4].lower() != "ctx:":
            continue
        parsed = _parse_ctx_body(candidate[4:], projects)
        if parsed is None:
            continue
        project, branch = parsed
        config = projects.resolve(project) if projects is not None else None
        if config is None:
            raise DirectiveError(
                f"unknown project {project!r} in ctx line; "
                "start a new thread or add it back to your config"
            )
        found = RunContext(project=project.lower(), branch=branch)
    return found


__all__ = [
    "DirectiveError",
    "ParsedDirectives",
    "format_context_line",
    "parse_context_line",
    "parse_directives",
]
