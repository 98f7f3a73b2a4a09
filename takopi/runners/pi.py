"""The ``pi`` engine: runs ``pi --print --mode json`` and translates its events.

Config (``[pi]`` in takopi.toml): ``extra_args`` (list of strings, default ``[]``, put first),
``model`` (``--model``), ``provider`` (``--provider``). ``/model`` overrides ``model``.

New runs get a session file path created by takopi
(``<PI_CODING_AGENT_DIR or ~/.pi/agent>/sessions/--<cwd>--/<timestamp>_<uuid>.jsonl``); once pi
prints its ``session`` header the resume token becomes the session's **full** id. (Short id
prefixes are never used: pi ids are UUIDv7, so prefixes of sessions started within a minute
collide and pi would resume the most recent one.) Resume line: `` `pi --session <token>` ``,
double-quoted when the token contains whitespace or quotes (paths).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend, EngineConfig
from takopi.events import EventFactory
from takopi.logging import get_logger
from takopi.model import CompletedEvent, ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState
from takopi.runners._common import (
    INLINE_SPACE,
    NOT_LINE_BREAK,
    EngineRunner,
    effective_model,
    opt_str,
    resume_line_re,
    str_list,
)
from takopi.runners.tool_actions import file_change_detail, tool_input_path, tool_kind_and_title
from takopi.schemas import pi as schema
from takopi.schemas._decode import SchemaError
from takopi.utils.paths import get_run_base_dir

ENGINE = "pi"
INSTALL_CMD = "npm install -g @mariozechner/pi-coding-agent"
DEFAULT_TITLE = "pi"

_RESUME_RE = resume_line_re(
    rf"pi{INLINE_SPACE}+--session{INLINE_SPACE}+(?P<token>{NOT_LINE_BREAK}+?)"
)
_NEEDS_QUOTES_RE = re.compile(r"[\s\"']")
_ERROR_STOP_REASONS = frozenset({"error", "aborted"})
_FOREIGN_SESSION = "Session found in different project"

logger = get_logger(__name__)


def pi_agent_dir(env: dict[str, str] | None = None) -> Path:
    """``$PI_CODING_AGENT_DIR`` or ``~/.pi/agent``."""
    env = dict(os.environ) if env is None else env
    configured = env.get("PI_CODING_AGENT_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or str(Path.home())) / ".pi" / "agent"


def session_dir_name(cwd: str) -> str:
    """pi's per-cwd session folder name: ``--<cwd without leading /, / \\ : as ->--``."""
    trimmed = cwd.lstrip("/\\")
    return "--" + re.sub(r"[/\\:]", "-", trimmed) + "--"


def new_session_path(cwd: str, *, env: dict[str, str] | None = None) -> Path:
    """A fresh session file path for ``cwd`` (its folder is created)."""
    folder = pi_agent_dir(env) / "sessions" / session_dir_name(cwd)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # pi then reports the problem itself
        logger.warning("pi.session_dir_failed", path=str(folder), error=str(exc))
    stamp = re.sub(r"[:.]", "-", datetime.now(UTC).isoformat())
    return folder / f"{stamp}_{uuid.uuid4().hex}.jsonl"


def quote_token(value: str) -> str:
    """Double-quote ``value`` (escaping ``"``) when it has whitespace or quotes."""
    if _NEEDS_QUOTES_RE.search(value):
        return '"' + value.replace('"', '\\"') + '"'
    return value


def unquote_token(value: str) -> str:
    """Undo :func:`quote_token`; also accepts single quotes. Unquoted values are verbatim."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return inner.replace('\\"', '"') if value[0] == '"' else inner
    return value


@dataclass(slots=True)
class PiRunState(JsonlRunState):
    """Per-run state: factory, the token to announce, last answer text, error, usage."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(ENGINE))
    token: ResumeToken | None = None
    session_path: str | None = None
    last_text: str = ""
    error: str | None = None
    usage: dict[str, Any] | None = None
    foreign_session: str | None = None
    thinking_seq: int = 0
    # tool call id -> (kind, title, detail) of tools still running
    tools: dict[str, tuple[Any, str, dict[str, Any]]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class PiRunner(EngineRunner):
    """Runs ``pi --print --mode json``; see the module docstring."""

    extra_args: list[str] = field(default_factory=list)
    model: str | None = None
    provider: str | None = None

    engine = ENGINE
    resume_re = _RESUME_RE
    install_cmd = INSTALL_CMD
    resume_template = "`pi --session {token}`"
    decode_event = staticmethod(schema.decode_event)

    # -- resume codec ---------------------------------------------------------------------

    def resume_token_text(self, value: str) -> str:
        """The token, quoted if needed (session file paths may contain spaces)."""
        return quote_token(value)

    def extract_resume(self, text: str | None) -> ResumeToken | None:
        """The last ``pi --session …`` line's token, surrounding quotes removed."""
        if not text:
            return None
        found: str | None = None
        for match in _RESUME_RE.finditer(text):
            value = unquote_token(match.group("token"))
            if value:
                found = value
        return ResumeToken(engine=ENGINE, value=found) if found is not None else None

    # -- process --------------------------------------------------------------------------

    def command(self) -> str:
        """The ``pi`` executable, looked up on PATH."""
        return "pi"

    def new_state(self, prompt: str, resume: ResumeToken | None) -> PiRunState:
        """A fresh :class:`PiRunState`; new runs get a new session file path."""
        state = PiRunState()
        if resume is not None:
            state.token = resume
        else:
            base = get_run_base_dir()
            cwd = os.fspath(base) if base is not None else os.getcwd()
            path = str(new_session_path(cwd))
            state.session_path = path
            state.token = ResumeToken(engine=ENGINE, value=path)
        return state

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        """``<extra_args> --print --mode json [--provider P] [--model M] --session S <prompt>``."""
        st: PiRunState = state
        args = [*self.extra_args, "--print", "--mode", "json"]
        if self.provider:
            args += ["--provider", self.provider]
        model = effective_model(self.model)
        if model:
            args += ["--model", model]
        assert st.token is not None
        args += ["--session", st.token.value]
        # pi would parse a prompt starting with "-" as an option
        args.append(f" {prompt}" if prompt.startswith("-") else prompt)
        return args

    def stdin_payload(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> bytes | None:
        """Nothing: stdin is closed at once (pi then never waits for a question's answer)."""
        return None

    def env(self, *, state: Any) -> dict[str, str] | None:
        """This process's environment plus ``NO_COLOR=1`` and ``CI=1`` (unless set)."""
        env = dict(os.environ)
        env.setdefault("NO_COLOR", "1")
        env.setdefault("CI", "1")
        return env

    # -- decoding -------------------------------------------------------------------------

    def decode_error_events(
        self, *, raw: str, line: str, error: Exception, state: Any
    ) -> list[TakopiEvent]:
        """As :class:`EngineRunner`, remembering pi's "session in a different project" line."""
        st: PiRunState = state
        if not isinstance(error, SchemaError) and line.startswith(_FOREIGN_SESSION):
            st.foreign_session = line.strip()
        return EngineRunner.decode_error_events(self, raw=raw, line=line, error=error, state=state)

    # -- translation ----------------------------------------------------------------------

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        """Events for one decoded pi event."""
        st: PiRunState = state
        events: list[TakopiEvent] = []
        if isinstance(data, schema.SessionHeader):
            if resume is None and data.id and st.factory.resume is None:
                st.token = ResumeToken(engine=ENGINE, value=data.id)
            if st.factory.resume is None and st.token is not None:
                meta = {
                    "cwd": data.cwd,
                    "model": effective_model(self.model),
                    "provider": self.provider,
                }
                if st.session_path:
                    meta["session_path"] = st.session_path
                events.append(
                    st.factory.started(
                        st.token,
                        title=DEFAULT_TITLE,
                        meta={k: v for k, v in meta.items() if v is not None},
                    )
                )
            return events
        if st.factory.resume is None and st.token is not None:
            events.append(st.factory.started(st.token, title=DEFAULT_TITLE))
        match data:
            case schema.ToolExecutionStart(tool_call_id=call_id, tool_name=name, args=args):
                tool_input = args if isinstance(args, dict) else {}
                kind, title = tool_kind_and_title(name, tool_input)
                detail: dict[str, Any] = {"tool_name": name, "args": args}
                if kind == "file_change":
                    detail.update(file_change_detail(tool_input_path(tool_input)))
                events.append(
                    st.factory.action_started(
                        action_id=call_id, kind=kind, title=title, detail=detail
                    )
                )
                st.tools[call_id] = (kind, title, detail)
            case schema.ToolExecutionEnd(
                tool_call_id=call_id, tool_name=name, result=result, is_error=is_error
            ):
                pending = st.tools.pop(call_id, None)
                if pending is None:
                    kind, title = tool_kind_and_title(name, {})
                    detail = {"tool_name": name}
                else:
                    kind, title, detail = pending[0], pending[1], dict(pending[2])
                detail["result"] = result
                events.append(
                    st.factory.action_completed(
                        action_id=call_id, kind=kind, title=title, ok=not is_error, detail=detail
                    )
                )
            case schema.MessageEnd(message=message) if message.role == "assistant":
                for thought in message.thinking():
                    st.thinking_seq += 1
                    events.append(
                        st.factory.action_completed(
                            action_id=f"pi.thinking.{st.thinking_seq}",
                            kind="note",
                            title=thought,
                            ok=True,
                        )
                    )
                text = message.text()
                if text:
                    st.last_text = text
                if message.usage is not None:
                    st.usage = message.usage
                if message.stop_reason in _ERROR_STOP_REASONS:
                    st.error = message.error_message or f"pi run {message.stop_reason}"
                else:
                    st.error = None
            case schema.AgentEnd():
                if st.error is not None:
                    events.append(
                        st.factory.completed_error(
                            error=st.error, answer=st.last_text, usage=st.usage
                        )
                    )
                else:
                    events.append(st.factory.completed_ok(answer=st.last_text, usage=st.usage))
            case _:
                pass
        return events

    # -- endings --------------------------------------------------------------------------

    def stream_end_events(
        self,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """Clean exit without ``agent_end``."""
        st: PiRunState = state
        error = "pi finished without an agent_end event"
        if st.foreign_session:
            error = (
                f"{error}: pi says '{st.foreign_session}' — resume it from the directory "
                "the session was started in"
            )
        return [
            CompletedEvent(
                engine=ENGINE,
                ok=False,
                answer=st.last_text,
                resume=found_session or resume,
                error=error,
            )
        ]


# -- config ---------------------------------------------------------------------------------


def build_runner(config: EngineConfig, config_path: Path) -> PiRunner:
    """Build a :class:`PiRunner` from the ``[pi]`` table; ``ConfigError`` if invalid."""
    return PiRunner(
        extra_args=str_list(config, ENGINE, "extra_args", config_path, []),
        model=opt_str(config, ENGINE, "model", config_path),
        provider=opt_str(config, ENGINE, "provider", config_path),
    )


BACKEND = EngineBackend(id=ENGINE, build_runner=build_runner, cli_cmd="pi", install_cmd=INSTALL_CMD)

__all__ = [
    "BACKEND",
    "PiRunState",
    "PiRunner",
    "build_runner",
    "new_session_path",
    "pi_agent_dir",
    "quote_token",
    "session_dir_name",
    "unquote_token",
]
