"""What the bundled engine runners (codex, claude, opencode, pi) share.

- :class:`EngineRunner` — a :class:`JsonlSubprocessRunner` whose lines are decoded by the
  engine's schema (``decode_event``), with a resume line built from ``resume_template``;
- :func:`effective_model` — the ``/model`` run option, else the configured model;
- :func:`opt_str`, :func:`opt_bool`, :func:`str_list` — validation of ``[<engine>]`` keys,
  raising :class:`ConfigError` with the same wording for every engine.

Only core modules are imported here (runners are plugins).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from takopi.backends import EngineConfig
from takopi.config import ConfigError
from takopi.logging import get_logger
from takopi.model import ResumeToken, TakopiEvent
from takopi.runner import JsonlSubprocessRunner, ResumeTokenMixin
from takopi.runners.run_options import get_run_options
from takopi.schemas._decode import SchemaError

_LINE_BREAK = r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
INLINE_SPACE = r"[^\S\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
"""Whitespace that does not end a line (regex class)."""
NOT_LINE_BREAK = r"[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
"""Any character but a line break (regex class)."""


def resume_line_re(body: str) -> re.Pattern[str]:
    """The regex of a resume line: ``body`` alone on its line, optionally in backticks,
    case-insensitive. Lines end where ``str.splitlines`` ends them, so the line a prompt loses
    as a resume line (``is_resume_line`` per line) is the one the token is taken from
    (``extract_resume`` over the whole text), and no match spans two lines. ``body`` separates
    words with :data:`INLINE_SPACE` and names the token ``(?P<token>...)``."""
    space = INLINE_SPACE
    return re.compile(
        rf"(?i)(?:^|(?<={_LINE_BREAK})){space}*`?{body}`?{space}*(?={_LINE_BREAK}|\Z)"
    )


def _no_schema(data: Any) -> Any:
    raise NotImplementedError("EngineRunner subclasses set decode_event")


class EngineRunner(ResumeTokenMixin, JsonlSubprocessRunner):
    """Base of the bundled engines: schema-checked JSONL and a templated resume line.

    Subclasses set ``decode_event`` (``staticmethod(schema.decode_event)``) and, when their
    resume line is not `` `<engine> resume <token>` ``, ``resume_template``.
    """

    #: Turns one JSON value into a schema object; raises ``SchemaError`` if it does not fit.
    decode_event = staticmethod(_no_schema)
    #: The resume line; ``{token}`` is replaced by :meth:`resume_token_text`.
    resume_template: ClassVar[str] = "`{engine} resume {token}`"

    def format_resume(self, token: ResumeToken) -> str:
        """The resume line for ``token``; raises ``RuntimeError`` for another engine's token."""
        if token.engine != self.engine:
            raise RuntimeError(f"resume token is for engine {token.engine!r}, not {self.engine!r}")
        return self.resume_template.format(
            engine=self.engine, token=self.resume_token_text(token.value)
        )

    def resume_token_text(self, value: str) -> str:
        """How a token value is written in the resume line (default: verbatim)."""
        return value

    def decode_jsonl(self, *, line: bytes) -> Any:
        """JSON then the engine's schema (``SchemaError`` for lines that do not fit)."""
        return self.decode_event(JsonlSubprocessRunner.decode_jsonl(self, line=line))

    def decode_error_events(
        self, *, raw: str, line: str, error: Exception, state: Any
    ) -> list[TakopiEvent]:
        """Schema mismatches are logged and dropped; invalid JSON goes to
        :meth:`invalid_json_events` (a warning note unless the engine overrides it)."""
        if isinstance(error, SchemaError):
            get_logger(type(self).__module__).warning(
                f"{self.engine}.schema_error", error=str(error), line=line[:500]
            )
            return []
        return JsonlSubprocessRunner.decode_error_events(
            self, raw=raw, line=line, error=error, state=state
        )


def effective_model(configured: str | None) -> str | None:
    """The model chosen for this run with ``/model``, else ``configured``."""
    options = get_run_options()
    if options is not None and options.model:
        return options.model
    return configured


def opt_str(
    config: EngineConfig, engine: str, key: str, config_path: Path, *, example: str = ""
) -> str | None:
    """``config[key]`` stripped, ``None`` if absent; ``ConfigError`` unless a non-empty string.

    ``example`` (e.g. ``" such as 'x'"``) is appended to the error's expectation.
    """
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"Invalid `{engine}.{key}` in {config_path}; expected a non-empty string{example}."
        )
    return value.strip()


def opt_bool(config: EngineConfig, engine: str, key: str, config_path: Path) -> bool:
    """``config[key]`` (default false); ``ConfigError`` unless a boolean."""
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"Invalid `{engine}.{key}` in {config_path}; expected true or false.")
    return value


def str_list(
    config: EngineConfig, engine: str, key: str, config_path: Path, default: list[str]
) -> list[str]:
    """A copy of ``config[key]`` (``default`` if absent); ``ConfigError`` unless a list of
    strings."""
    if key not in config:
        return list(default)
    value = config[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"Invalid `{engine}.{key}` in {config_path}; expected a list of strings.")
    return list(value)


__all__ = [
    "INLINE_SPACE",
    "NOT_LINE_BREAK",
    "EngineRunner",
    "effective_model",
    "opt_bool",
    "opt_str",
    "resume_line_re",
    "str_list",
]
