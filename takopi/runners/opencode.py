"""The ``opencode`` engine: runs ``opencode run --format json`` and translates its events.

Config (``[opencode]`` in takopi.toml): ``model`` (string, ``provider/model``) — ``--model``
and the session title (default ``opencode``). ``/model`` overrides it.

opencode binds a session to the directory it was created in: resuming from any other cwd
hangs forever. Resumes therefore pass ``--dir <original directory>`` when the session was
created elsewhere (known from this runner's own runs, else looked up read-only in opencode's
session database). Resume line: `` `opencode --session ses_…` ``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend, EngineConfig
from takopi.events import EventFactory
from takopi.logging import get_logger
from takopi.model import ActionKind, CompletedEvent, ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState
from takopi.runners._common import (
    INLINE_SPACE,
    EngineRunner,
    effective_model,
    opt_str,
    resume_line_re,
)
from takopi.runners.tool_actions import file_change_detail, tool_input_path, tool_kind_and_title
from takopi.schemas import opencode as schema
from takopi.utils.paths import get_run_base_dir, relativize_command, relativize_path

ENGINE = "opencode"
INSTALL_CMD = "npm install -g opencode-ai@latest"
DEFAULT_TITLE = "opencode"
OUTPUT_PREVIEW_CHARS = 500

_RESUME_RE = resume_line_re(
    rf"opencode(?:{INLINE_SPACE}+run)?{INLINE_SPACE}+(?:--session|-s){INLINE_SPACE}+"
    r"(?P<token>ses_[A-Za-z0-9]+)"
)
_REJECTED_RE = re.compile(r"rejected permission|permission .*denied", re.IGNORECASE)
_SESSION_DIR_LIMIT = 1024

logger = get_logger(__name__)


def opencode_db_path(env: dict[str, str] | None = None) -> Path:
    """Where opencode keeps its sessions: ``$XDG_DATA_HOME/opencode/opencode.db``."""
    env = dict(os.environ) if env is None else env
    data_home = env.get("XDG_DATA_HOME") or os.path.join(
        env.get("HOME") or str(Path.home()), ".local", "share"
    )
    return Path(data_home) / "opencode" / "opencode.db"


def lookup_session_directory(session_id: str, db_path: Path | None = None) -> str | None:
    """The directory a session was created in, read from opencode's database (best effort)."""
    path = db_path or opencode_db_path()
    if not path.is_file():
        return None
    import sqlite3  # only here: an opencode worker that never resumes a session skips it

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            row = conn.execute(
                "SELECT directory FROM session WHERE id = ?", (session_id,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        logger.debug("opencode.session_lookup_failed", error=str(exc))
        return None
    if row and isinstance(row[0], str) and row[0]:
        return row[0]
    return None


@dataclass(slots=True)
class OpencodeRunState(JsonlRunState):
    """Per-run state: factory, answer text of the latest step, usage totals."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(ENGINE))
    cwd: str | None = None
    step_texts: list[str] = field(default_factory=list)
    answer: str = ""
    saw_step_finish: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    started_tools: set[str] = field(default_factory=set)


def _current_cwd() -> str:
    base = get_run_base_dir()
    return os.fspath(base) if base is not None else os.getcwd()


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return a == b


def _error_message(event: schema.ErrorEvent) -> str:
    for source in (event.error, event.message):
        if isinstance(source, str) and source.strip():
            return source.strip()
        if isinstance(source, dict):
            data = source.get("data")
            if isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"]:
                return str(data["message"])
            for key in ("message", "name"):
                value = source.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return "opencode error"


def _add_usage(total: dict[str, Any], part: schema.StepFinishPart) -> None:
    tokens = part.tokens
    if tokens is not None:
        for key, value in (
            ("input_tokens", tokens.input),
            ("output_tokens", tokens.output),
            ("reasoning_tokens", tokens.reasoning),
            ("cache_read_tokens", tokens.cache.read),
            ("cache_write_tokens", tokens.cache.write),
        ):
            total[key] = total.get(key, 0) + value
    if part.cost is not None:
        total["cost"] = total.get("cost", 0.0) + part.cost


@dataclass(slots=True, eq=False)
class OpencodeRunner(EngineRunner):
    """Runs ``opencode run --format json``; see the module docstring."""

    model: str | None = None
    # session id -> directory it was created in, for the sessions this runner started
    session_dirs: dict[str, str] = field(default_factory=dict)

    engine = ENGINE
    resume_re = _RESUME_RE
    install_cmd = INSTALL_CMD
    resume_template = "`opencode --session {token}`"
    decode_event = staticmethod(schema.decode_event)

    # -- process --------------------------------------------------------------------------

    def command(self) -> str:
        """The ``opencode`` executable, looked up on PATH."""
        return "opencode"

    def session_directory(self, session_id: str) -> str | None:
        """The directory ``session_id`` belongs to, if known."""
        known = self.session_dirs.get(session_id)
        if known is not None:
            return known
        return lookup_session_directory(session_id)

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        """``run --format json [--session S [--dir D]] [--model M] -- <prompt>``."""
        st: OpencodeRunState = state
        args = ["run", "--format", "json"]
        if resume is not None:
            args += ["--session", resume.value]
            origin = self.session_directory(resume.value)
            if origin and st.cwd and not _same_dir(origin, st.cwd) and os.path.isdir(origin):
                args += ["--dir", origin]
        model = effective_model(self.model)
        if model:
            args += ["--model", model]
        args += ["--", prompt]
        return args

    def stdin_payload(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> bytes | None:
        """Nothing: the prompt is an argument and stdin is closed at once."""
        return None

    def new_state(self, prompt: str, resume: ResumeToken | None) -> OpencodeRunState:
        """A fresh :class:`OpencodeRunState` remembering the run's cwd."""
        return OpencodeRunState(cwd=_current_cwd())

    # -- translation ----------------------------------------------------------------------

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        """Events for one decoded opencode event."""
        st: OpencodeRunState = state
        events: list[TakopiEvent] = []
        session_id = getattr(data, "session_id", None)
        if st.factory.resume is None and (session_id or resume is not None):
            events += self._started(session_id, st, resume)
        match data:
            case schema.StepStart():
                st.step_texts = []
            case schema.TextEvent(part=part):
                if part.text:
                    st.step_texts.append(part.text)
                    st.answer = "".join(st.step_texts)
            case schema.ReasoningEvent(part=part):
                if part.text.strip():
                    events.append(
                        st.factory.action_completed(
                            action_id=part.id or f"opencode.reasoning.{st.note_seq}",
                            kind="note",
                            title=part.text.strip(),
                            ok=True,
                        )
                    )
            case schema.ToolUse(part=part):
                events += self._tool(part, st)
            case schema.StepFinish(part=part):
                st.saw_step_finish = True
                _add_usage(st.usage, part)
                if part.reason == "stop":
                    events.append(
                        st.factory.completed_ok(answer=st.answer, usage=dict(st.usage) or None)
                    )
            case schema.ErrorEvent():
                events.append(
                    st.factory.completed_error(
                        error=_error_message(data),
                        answer=st.answer,
                        resume=st.factory.resume or resume,
                    )
                )
            case _:
                logger.debug("opencode.event_ignored", type=getattr(data, "type", None))
        return events

    def _started(
        self, session_id: str | None, st: OpencodeRunState, resume: ResumeToken | None
    ) -> list[TakopiEvent]:
        token = resume
        if token is None and session_id:
            token = ResumeToken(engine=ENGINE, value=session_id)
        elif resume is not None and session_id and session_id != resume.value:
            logger.warning("opencode.session_mismatch", requested=resume.value, got=session_id)
        if token is None:
            return []
        if resume is None and st.cwd:
            if len(self.session_dirs) >= _SESSION_DIR_LIMIT:
                self.session_dirs.pop(next(iter(self.session_dirs)))
            self.session_dirs[token.value] = st.cwd
        return [st.factory.started(token, title=effective_model(self.model) or DEFAULT_TITLE)]

    def _tool(self, part: schema.ToolPart, st: OpencodeRunState) -> list[TakopiEvent]:
        state = part.state
        action_id = part.call_id or part.id
        kind: ActionKind
        kind, title = tool_kind_and_title(part.tool, state.input, task_kind="tool")
        if kind == "command":
            command = state.input.get("command")
            title = relativize_command(command) if isinstance(command, str) and command else title
        elif kind not in ("file_change",) and title == part.tool and state.title:
            title = state.title
        detail: dict[str, Any] = {"name": part.tool, "input": state.input}
        if state.title:
            detail["title"] = state.title
        if kind == "file_change":
            detail.update(file_change_detail(tool_input_path(state.input)))
        if state.status not in ("completed", "error"):
            st.started_tools.add(action_id)
            return [
                st.factory.action_started(
                    action_id=action_id, kind=kind, title=title, detail=detail
                )
            ]
        # opencode often prints a tool only once it is done: announce it first so that
        # every action has a start
        events: list[TakopiEvent] = []
        if action_id not in st.started_tools:
            events.append(
                st.factory.action_started(
                    action_id=action_id, kind=kind, title=title, detail=dict(detail)
                )
            )
        st.started_tools.discard(action_id)
        if state.status == "completed":
            exit_code = state.metadata.get("exit")
            output = state.output or ""
            detail["output_preview"] = output[:OUTPUT_PREVIEW_CHARS]
            if isinstance(exit_code, int) and not isinstance(exit_code, bool):
                detail["exit_code"] = exit_code
            ok = not (isinstance(exit_code, int) and exit_code != 0)
            events.append(
                st.factory.action_completed(
                    action_id=action_id, kind=kind, title=title, ok=ok, detail=detail
                )
            )
            return events
        message = state.error or "tool failed"
        detail["error"] = message
        events.append(
            st.factory.action_completed(
                action_id=action_id,
                kind=kind,
                title=title,
                ok=False,
                detail=detail,
                message=message,
            )
        )
        if _REJECTED_RE.search(message):
            subject = (
                relativize_command(state.input["command"])
                if isinstance(state.input.get("command"), str)
                else relativize_path(tool_input_path(state.input) or "")
            )
            label = f"permission denied: {part.tool}" + (f" `{subject}`" if subject else "")
            events.append(
                st.factory.action_completed(
                    action_id=f"opencode.denied.{action_id}",
                    kind="warning",
                    title=label,
                    ok=False,
                    detail={"tool_name": part.tool, "tool_input": state.input},
                    message=message,
                    level="warning",
                )
            )
        return events

    # -- endings --------------------------------------------------------------------------

    def stream_end_events(
        self,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """Clean exit without ``step_finish(stop)``: ok if any step finished, else an error."""
        st: OpencodeRunState = state
        token = found_session or resume
        if token is None:
            return [
                CompletedEvent(
                    engine=ENGINE,
                    ok=False,
                    answer=st.answer,
                    error="opencode finished but no session_id was captured",
                )
            ]
        if st.saw_step_finish:
            return [
                CompletedEvent(
                    engine=ENGINE,
                    ok=True,
                    answer=st.answer,
                    resume=token,
                    usage=dict(st.usage) or None,
                )
            ]
        return [
            CompletedEvent(
                engine=ENGINE,
                ok=False,
                answer=st.answer,
                resume=token,
                error="opencode finished without a result event",
            )
        ]


def build_runner(config: EngineConfig, config_path: Path) -> OpencodeRunner:
    """Build an :class:`OpencodeRunner` from ``[opencode]``; ``ConfigError`` if invalid."""
    model = opt_str(
        config, ENGINE, "model", config_path, example=" such as 'anthropic/claude-sonnet-4-5'"
    )
    return OpencodeRunner(model=model)


BACKEND = EngineBackend(id=ENGINE, build_runner=build_runner, install_cmd=INSTALL_CMD)

__all__ = [
    "BACKEND",
    "OpencodeRunState",
    "OpencodeRunner",
    "build_runner",
    "lookup_session_directory",
    "opencode_db_path",
]
