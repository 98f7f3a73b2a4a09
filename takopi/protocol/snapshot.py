"""What the supervisor pushes to transport and command workers: engines and plain settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ResumeCodecInfo:
    """An engine's resume regex, shipped once so that callers can answer resume questions
    without a round trip. ``local_line``/``local_extract``: the runner uses the default
    implementations of ``is_resume_line``/``extract_resume``, so the regex alone answers them.
    ``line_prefix``/``line_suffix``: what the runner's ``format_resume`` puts around a token
    (None when its line is not that simple), so a resume line can be written before the
    engine's worker runs."""

    pattern: str | None = None
    flags: int = 0
    local_line: bool = False
    local_extract: bool = False
    line_prefix: str | None = None
    line_suffix: str = ""


def reads_back_token(regex: re.Pattern[str], line: str, value: str) -> bool:
    """Whether ``regex`` finds exactly ``value`` as the ``token`` group of ``line``: the check
    a resume line template must pass, when the engine worker derives it from a sample token
    and when the supervisor fills it with a real one (whose characters the line may not
    carry as they are)."""
    match = regex.search(line)
    return match is not None and match.groupdict().get("token") == value


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """The supervisor's routing view; sent at load/start and as ``runtime.changed``."""

    default_engine: str = ""
    engine_ids: tuple[str, ...] = ()
    allowlist: tuple[str, ...] | None = None
    config_path: str | None = None
    watch_config: bool = False
    engines: dict[str, ResumeCodecInfo] = field(default_factory=dict)


__all__ = ["ResumeCodecInfo", "RuntimeSnapshot", "reads_back_token"]
