"""Projects: named repositories that runs can work in (``[projects.<alias>]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """One ``[projects.<alias>]`` table, validated and with absolute paths."""

    alias: str
    path: Path
    worktrees_dir: Path = Path(".worktrees")
    default_engine: str | None = None
    worktree_base: str | None = None
    chat_id: int | None = None

    @property
    def worktrees_root(self) -> Path:
        """Where ``@branch`` worktrees live (``worktrees_dir`` relative to ``path``)."""
        if self.worktrees_dir.is_absolute():
            return self.worktrees_dir
        return self.path / self.worktrees_dir


@dataclass(frozen=True, slots=True)
class ProjectsConfig:
    """All projects, keyed by lower-cased alias, plus chat bindings and the default project."""

    projects: dict[str, ProjectConfig] = field(default_factory=dict)
    default_project: str | None = None
    chat_map: dict[int, str] = field(default_factory=dict)

    def resolve(self, alias: str | None) -> ProjectConfig | None:
        """The project for ``alias`` (case-insensitive), or None."""
        if alias is None:
            return None
        return self.projects.get(alias.lower())

    def project_for_chat(self, chat_id: int | str | None) -> str | None:
        """The project key bound to ``chat_id`` via ``projects.<alias>.chat_id``."""
        if chat_id is None:
            return None
        try:
            return self.chat_map.get(int(chat_id))
        except (TypeError, ValueError):
            return None

    def aliases(self) -> list[str]:
        """Project aliases as written in the config, in config order."""
        return [p.alias for p in self.projects.values()]


__all__ = ["ProjectConfig", "ProjectsConfig"]
