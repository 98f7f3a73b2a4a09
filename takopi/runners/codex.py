"""The ``codex`` engine: runs ``codex exec --json`` and translates its JSONL stream.

Config (``[codex]`` in takopi.toml):

- ``extra_args`` (list of strings, default ``["-c", "notify=[]"]``): put before ``exec``;
  flags that takopi manages itself (``--json``, ``--color``, …) are rejected;
- ``profile`` (string): passed as ``--profile``; also the session title (default ``Codex``).

``/model`` adds ``--model M``, ``/reasoning`` adds ``-c model_reasoning_effort=R``. The prompt
goes to codex on stdin. Resume line: `` `codex resume <thread id>` ``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend, EngineConfig
from takopi.config import ConfigError
from takopi.events import EventFactory
from takopi.logging import get_logger
from takopi.model import ActionPhase, CompletedEvent, ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState
from takopi.runners._common import INLINE_SPACE, EngineRunner, opt_str, resume_line_re, str_list
from takopi.runners.run_options import get_run_options
from takopi.schemas import codex as schema
from takopi.utils.paths import relativize_command, relativize_path

ENGINE = "codex"
INSTALL_CMD = "npm install -g @openai/codex"
DEFAULT_EXTRA_ARGS: tuple[str, ...] = ("-c", "notify=[]")
DEFAULT_TITLE = "Codex"

_RESUME_RE = resume_line_re(rf"codex{INLINE_SPACE}+resume{INLINE_SPACE}+(?P<token>[^`\s]+)")
_RECONNECT_RE = re.compile(r"^Reconnecting\.{3}\s*(?P<attempt>\d+)/(?P<max>\d+)\s*$", re.IGNORECASE)
_EXEC_ONLY_FLAGS = frozenset(
    {"--skip-git-repo-check", "--json", "--output-schema", "--output-last-message", "--color", "-o"}
)
_EXEC_ONLY_PREFIXES = ("--output-schema=", "--output-last-message=", "--color=")
_FILE_TITLE_MAX_PATHS = 3

logger = get_logger(__name__)


@dataclass(slots=True)
class CodexRunState(JsonlRunState):
    """Per-run state: the event factory, the current turn and its agent messages."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(ENGINE))
    turn_index: int = -1
    # (phase, text) of the current turn's agent messages, in order
    messages: list[tuple[str | None, str]] = field(default_factory=list)


def clean_error(message: str) -> str:
    """The ``error.message`` inside a JSON error body codex passes through verbatim."""
    text = message.strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            return text
        error = body.get("error") if isinstance(body, dict) else None
        inner = error.get("message") if isinstance(error, dict) else None
        if isinstance(inner, str) and inner.strip():
            return inner.strip()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"]).strip() or text
    return text


def final_answer(messages: list[tuple[str | None, str]]) -> str:
    """The last ``final_answer`` message, else the last message without a phase."""
    for phase, text in reversed(messages):
        if phase == "final_answer":
            return text
    for phase, text in reversed(messages):
        if phase is None:
            return text
    return ""


def _phase_of(event: schema.ItemEvent) -> ActionPhase:
    if isinstance(event, schema.ItemStarted):
        return "started"
    if isinstance(event, schema.ItemUpdated):
        return "updated"
    return "completed"


def _file_change_title(changes: list[schema.FileUpdateChange]) -> str:
    paths = [relativize_path(change.path) for change in changes]
    if 0 < len(paths) <= _FILE_TITLE_MAX_PATHS:
        return ", ".join(paths)
    return f"{len(paths)} files"


def _todo_title(items: list[schema.TodoEntry]) -> str:
    done = sum(1 for item in items if item.completed)
    pending = next((item.text for item in items if not item.completed), None)
    return f"todo {done}/{len(items)}: {pending if pending is not None else 'done'}"


def _mcp_detail(item: schema.McpToolCallItem) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "server": item.server,
        "tool": item.tool,
        "arguments": item.arguments,
        "status": item.status,
    }
    if item.error is not None:
        detail["error_message"] = item.error.message
    if item.result is not None:
        detail["result_summary"] = {
            "content_blocks": len(item.result.content),
            "has_structured": item.result.structured_content is not None,
        }
    return detail


@dataclass(slots=True, eq=False)
class CodexRunner(EngineRunner):
    """Runs ``codex exec --json``; see the module docstring for config and argv."""

    extra_args: list[str] = field(default_factory=lambda: list(DEFAULT_EXTRA_ARGS))
    profile: str | None = None
    title: str = DEFAULT_TITLE

    engine = ENGINE
    resume_re = _RESUME_RE
    install_cmd = INSTALL_CMD
    decode_event = staticmethod(schema.decode_event)

    # -- process --------------------------------------------------------------------------

    def command(self) -> str:
        """The ``codex`` executable, looked up on PATH."""
        return "codex"

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        """``<extra_args> [--profile P] [--model M] [-c model_reasoning_effort=R] exec …``."""
        args = list(self.extra_args)
        if self.profile:
            args += ["--profile", self.profile]
        options = get_run_options()
        if options is not None and options.model:
            args += ["--model", options.model]
        if options is not None and options.reasoning:
            args += ["-c", f"model_reasoning_effort={options.reasoning}"]
        args += ["exec", "--json", "--skip-git-repo-check", "--color=never"]
        if resume is not None:
            args += ["resume", resume.value]
        args.append("-")
        return args

    def new_state(self, prompt: str, resume: ResumeToken | None) -> CodexRunState:
        """A fresh :class:`CodexRunState`."""
        return CodexRunState()

    # -- translation ----------------------------------------------------------------------

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        """Events for one decoded codex event."""
        st: CodexRunState = state
        factory = st.factory
        match data:
            case schema.ThreadStarted(thread_id=thread_id):
                token = ResumeToken(engine=ENGINE, value=thread_id)
                if resume is not None and token != resume:
                    logger.warning("codex.session_mismatch", requested=resume.value, got=thread_id)
                    token = resume
                if factory.resume is not None:
                    return []
                return [factory.started(token, title=self.title)]
            case schema.TurnStarted():
                st.turn_index += 1
                st.messages.clear()
                return [
                    factory.action_started(
                        action_id=f"turn_{st.turn_index}", kind="turn", title="turn started"
                    )
                ]
            case schema.ItemStarted() | schema.ItemUpdated() | schema.ItemCompleted():
                return self._translate_item(data, st)
            case schema.TurnCompleted(usage=usage):
                return [
                    factory.completed_ok(
                        answer=final_answer(st.messages),
                        resume=found_session or resume,
                        usage={
                            "input_tokens": usage.input_tokens,
                            "cached_input_tokens": usage.cached_input_tokens,
                            "output_tokens": usage.output_tokens,
                        },
                    )
                ]
            case schema.TurnFailed(error=error):
                return [
                    factory.completed_error(
                        error=clean_error(error.message) or "codex turn failed",
                        answer=final_answer(st.messages),
                        resume=found_session or resume,
                    )
                ]
            case schema.StreamError(message=message):
                match = _RECONNECT_RE.match(message.strip())
                if match is not None:
                    attempt = int(match.group("attempt"))
                    phase: ActionPhase = "started" if attempt <= 1 else "updated"
                    return [
                        factory.action(
                            phase=phase,
                            action_id="codex.reconnect",
                            kind="note",
                            title=message.strip(),
                            detail={"attempt": attempt, "max": int(match.group("max"))},
                            level="info",
                        )
                    ]
                return [self.note_event(clean_error(message) or "codex error", state=st)]
            case _:
                logger.debug("codex.event_ignored", type=getattr(data, "type", None))
                return []

    def _translate_item(self, event: schema.ItemEvent, st: CodexRunState) -> list[TakopiEvent]:
        factory = st.factory
        phase = _phase_of(event)
        done = phase == "completed"
        item = event.item
        match item:
            case schema.AgentMessageItem(id=item_id, text=text, phase=msg_phase):
                if msg_phase == "commentary":
                    return [
                        factory.action(
                            phase=phase,
                            action_id=item_id,
                            kind="note",
                            title=text,
                            ok=True if done else None,
                        )
                    ]
                if done:
                    st.messages.append((msg_phase, text))
                return []
            case schema.ReasoningItem(id=item_id, text=text):
                if not text.strip():
                    return []
                return [
                    factory.action(
                        phase=phase,
                        action_id=item_id,
                        kind="note",
                        title=text,
                        ok=True if done else None,
                    )
                ]
            case schema.CommandExecutionItem():
                ok: bool | None = None
                if done:
                    ok = item.status == "completed" and (
                        item.exit_code == 0 if isinstance(item.exit_code, int) else True
                    )
                return [
                    factory.action(
                        phase=phase,
                        action_id=item.id,
                        kind="command",
                        title=relativize_command(item.command),
                        detail={"exit_code": item.exit_code, "status": item.status},
                        ok=ok,
                    )
                ]
            case schema.McpToolCallItem():
                return [
                    factory.action(
                        phase=phase,
                        action_id=item.id,
                        kind="tool",
                        title=f"{item.server}.{item.tool}",
                        detail=_mcp_detail(item),
                        ok=(item.status == "completed" and item.error is None) if done else None,
                    )
                ]
            case schema.WebSearchItem(id=item_id, query=query):
                return [
                    factory.action(
                        phase=phase,
                        action_id=item_id,
                        kind="web_search",
                        title=query,
                        detail={"query": query},
                        ok=True if done else None,
                    )
                ]
            case schema.FileChangeItem(id=item_id, changes=changes, status=status):
                if not done:
                    return []
                return [
                    factory.action_completed(
                        action_id=item_id,
                        kind="file_change",
                        title=_file_change_title(changes),
                        detail={
                            "changes": [
                                {"path": relativize_path(change.path), "kind": change.kind}
                                for change in changes
                            ],
                            "status": status,
                        },
                        ok=status == "completed",
                    )
                ]
            case schema.TodoListItem(id=item_id, items=items):
                return [
                    factory.action(
                        phase=phase,
                        action_id=item_id,
                        kind="note",
                        title=_todo_title(items),
                        detail={
                            "items": [{"text": i.text, "completed": i.completed} for i in items]
                        },
                        ok=True if done else None,
                    )
                ]
            case schema.ErrorItem(id=item_id, message=message):
                if not done:
                    return []
                return [
                    factory.action_completed(
                        action_id=item_id,
                        kind="warning",
                        title=message,
                        ok=False,
                        message=message,
                        level="warning",
                    )
                ]
            case _:
                logger.debug("codex.item_ignored", type=getattr(item, "type", None))
                return []

    # -- endings --------------------------------------------------------------------------

    def process_error_events(
        self,
        rc: int,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """A note and ``codex exec failed (rc=N).``, keeping any partial answer."""
        st: CodexRunState = state
        message = f"codex exec failed (rc={rc})."
        return [
            self.note_event(message, state=st, detail={"rc": rc}),
            CompletedEvent(
                engine=ENGINE,
                ok=False,
                answer=final_answer(st.messages),
                resume=found_session or resume,
                error=message,
            ),
        ]

    def stream_end_events(
        self,
        *,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
        state: Any,
    ) -> list[TakopiEvent]:
        """Clean exit without ``turn.completed``: ok if a thread id was seen, else an error."""
        st: CodexRunState = state
        token = found_session or resume
        if token is None:
            return [
                CompletedEvent(
                    engine=ENGINE,
                    ok=False,
                    answer=final_answer(st.messages),
                    error="codex exec finished but no session_id/thread_id was captured",
                )
            ]
        return [
            CompletedEvent(engine=ENGINE, ok=True, answer=final_answer(st.messages), resume=token)
        ]


# -- config ---------------------------------------------------------------------------------


def _check_extra_args(config: EngineConfig, config_path: Path) -> list[str]:
    extra_args = str_list(config, ENGINE, "extra_args", config_path, list(DEFAULT_EXTRA_ARGS))
    for arg in extra_args:
        if arg in _EXEC_ONLY_FLAGS or arg.startswith(_EXEC_ONLY_PREFIXES):
            raise ConfigError(
                f"Invalid `codex.extra_args` in {config_path}: "
                f"exec-only flag {arg!r} is managed by Takopi."
            )
    return extra_args


def build_runner(config: EngineConfig, config_path: Path) -> CodexRunner:
    """Build a :class:`CodexRunner` from the ``[codex]`` table; ``ConfigError`` if invalid."""
    extra_args = _check_extra_args(config, config_path)
    profile = opt_str(config, ENGINE, "profile", config_path)
    return CodexRunner(
        extra_args=extra_args,
        profile=profile,
        title=profile or DEFAULT_TITLE,
    )


BACKEND = EngineBackend(id=ENGINE, build_runner=build_runner, install_cmd=INSTALL_CMD)

__all__ = ["BACKEND", "CodexRunState", "CodexRunner", "build_runner", "final_answer"]
