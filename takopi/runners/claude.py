"""The ``claude`` engine: runs Claude Code in print mode and translates its stream-json.

Config (``[claude]`` in takopi.toml):

- ``model`` (string): ``--model``; also the session title (default ``claude``);
- ``allowed_tools`` (list of strings, default ``["Bash", "Read", "Edit", "Write"]``):
  ``--allowedTools``; an empty list disables the flag;
- ``dangerously_skip_permissions`` (bool): ``--dangerously-skip-permissions`` when ``true``;
- ``permission_mode`` (string): ``--permission-mode <mode>`` when set;
- ``use_api_billing`` (bool, default false): unless true, ``ANTHROPIC_API_KEY`` is removed
  from claude's environment so that the subscription login is used.

Permission denials (a ``tool_result`` refused for lack of permission, and the result's
``permission_denials``) become warning actions naming the tool and its input, and are listed
at the end of the final answer (progress actions are not part of the final message).
Resume line: `` `claude --resume <session id>` ``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takopi.backends import EngineBackend, EngineConfig
from takopi.config import ConfigError
from takopi.events import EventFactory
from takopi.logging import get_logger
from takopi.model import ActionKind, CompletedEvent, ResumeToken, TakopiEvent
from takopi.runner import JsonlRunState
from takopi.runners._common import (
    INLINE_SPACE,
    EngineRunner,
    effective_model,
    opt_bool,
    opt_str,
    resume_line_re,
)
from takopi.runners.tool_actions import file_change_detail, tool_input_path, tool_kind_and_title
from takopi.schemas import claude as schema
from takopi.utils.paths import relativize_command, relativize_path

ENGINE = "claude"
INSTALL_CMD = "npm install -g @anthropic-ai/claude-code"
DEFAULT_ALLOWED_TOOLS: tuple[str, ...] = ("Bash", "Read", "Edit", "Write")
DEFAULT_TITLE = "claude"

_RESUME_RE = resume_line_re(
    rf"claude{INLINE_SPACE}+(?:--resume|-r){INLINE_SPACE}+(?P<token>[^`\s]+)"
)
_PERMISSION_MODE_RE = re.compile(r"^[A-Za-z][A-Za-z_-]*$")
# How claude words a tool call it refused (varies by permission mode and tool).
_DENIED_RE = re.compile(
    r"permission to use \S+ (?:has been|was) denied"
    r"|requested permissions? to"
    r"|haven't granted it"
    r"|was blocked\. For security"
    r"|doesn't want to proceed with this tool use",
    re.IGNORECASE,
)
_SUMMARY_MAX = 200

logger = get_logger(__name__)


@dataclass(slots=True)
class PendingTool:
    """A ``tool_use`` waiting for its ``tool_result``."""

    kind: ActionKind
    title: str
    name: str
    input: dict[str, Any]
    detail: dict[str, Any]


@dataclass(slots=True)
class ClaudeRunState(JsonlRunState):
    """Per-run state: factory, pending tool calls, last text, reported denials."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(ENGINE))
    pending: dict[str, PendingTool] = field(default_factory=dict)
    last_text: str = ""
    thinking_seq: int = 0
    denied: set[str] = field(default_factory=set)
    denial_seq: int = 0
    denial_titles: list[str] = field(default_factory=list)


def _result_text(content: Any) -> str:
    """A tool_result's content as text (string, or the text parts of a list)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, default=str)


def input_summary(tool_name: str, tool_input: dict[str, Any]) -> str:
    """A short human form of a tool input: the command, the path, or compact JSON."""
    command = tool_input.get("command")
    if isinstance(command, str) and command.strip():
        text = relativize_command(command.strip())
    else:
        path = tool_input_path(tool_input)
        text = relativize_path(path) if path else ""
        if not text:
            for key in ("pattern", "url", "query"):
                value = tool_input.get(key)
                if isinstance(value, str) and value:
                    text = value
                    break
        if not text and tool_input:
            text = json.dumps(tool_input, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > _SUMMARY_MAX:
        text = text[: _SUMMARY_MAX - 1] + "…"
    return text


def denial_title(tool_name: str, tool_input: dict[str, Any]) -> str:
    """``permission denied: Bash `touch f```."""
    summary = input_summary(tool_name, tool_input)
    name = tool_name or "tool"
    return f"permission denied: {name} `{summary}`" if summary else f"permission denied: {name}"


def _with_denials(answer: str, titles: list[str]) -> str:
    """Append the denied tool calls to the answer: progress actions vanish with the run."""
    if not titles:
        return answer
    notice = "\n".join(titles)
    return f"{answer}\n\n{notice}" if answer.strip() else notice


@dataclass(slots=True, eq=False)
class ClaudeRunner(EngineRunner):
    """Runs ``claude -p --output-format stream-json``; see the module docstring."""

    model: str | None = None
    allowed_tools: list[str] | None = field(default_factory=lambda: list(DEFAULT_ALLOWED_TOOLS))
    dangerously_skip_permissions: bool = False
    permission_mode: str | None = None
    use_api_billing: bool = False

    engine = ENGINE
    resume_re = _RESUME_RE
    install_cmd = INSTALL_CMD
    resume_template = "`claude --resume {token}`"
    decode_event = staticmethod(schema.decode_event)

    # -- process --------------------------------------------------------------------------

    def command(self) -> str:
        """``claude`` resolved on PATH (``claude.cmd`` shims on Windows), else ``claude``."""
        return shutil.which("claude") or "claude"

    def build_args(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> list[str]:
        """``-p --output-format stream-json --verbose [--resume] [--model] … -- <prompt>``."""
        args = ["-p", "--output-format", "stream-json", "--verbose"]
        if resume is not None:
            args += ["--resume", resume.value]
        model = effective_model(self.model)
        if model:
            args += ["--model", model]
        if self.permission_mode:
            args += ["--permission-mode", self.permission_mode]
        if self.allowed_tools:
            args += ["--allowedTools", ",".join(self.allowed_tools)]
        if self.dangerously_skip_permissions:
            args.append("--dangerously-skip-permissions")
        args += ["--", prompt]
        return args

    def stdin_payload(self, prompt: str, resume: ResumeToken | None, *, state: Any) -> bytes | None:
        """Nothing: the prompt is an argument and stdin is closed at once."""
        return None

    def env(self, *, state: Any) -> dict[str, str] | None:
        """This process's environment, minus ``ANTHROPIC_API_KEY`` unless API billing is on."""
        if self.use_api_billing:
            return None
        env = dict(os.environ)
        env.pop("ANTHROPIC_API_KEY", None)
        return env

    def new_state(self, prompt: str, resume: ResumeToken | None) -> ClaudeRunState:
        """A fresh :class:`ClaudeRunState`."""
        return ClaudeRunState()

    # -- decoding -------------------------------------------------------------------------

    def invalid_json_events(self, *, raw: str, line: str, state: Any) -> list[TakopiEvent]:
        """claude prints the odd non-JSON line (e.g. update notices): ignore them."""
        logger.debug("claude.invalid_json", line=line[:200])
        return []

    # -- translation ----------------------------------------------------------------------

    def translate(
        self,
        data: Any,
        *,
        state: Any,
        resume: ResumeToken | None,
        found_session: ResumeToken | None,
    ) -> list[TakopiEvent]:
        """Events for one decoded claude message."""
        st: ClaudeRunState = state
        match data:
            case schema.SystemMessage(subtype="init", session_id=str(session_id)):
                return self._started(data, session_id, st, resume)
            case schema.AssistantMessage(message=payload, parent_tool_use_id=parent):
                events: list[TakopiEvent] = []
                for block in payload.content:
                    events += self._assistant_block(block, parent, st)
                return events
            case schema.UserMessage(message=payload):
                if isinstance(payload.content, str):
                    return []
                events = []
                for block in payload.content:
                    if isinstance(block, schema.ToolResultBlock):
                        events += self._tool_result(block, st)
                return events
            case schema.ResultMessage():
                return self._result(data, st, resume=found_session or resume)
            case _:
                return []

    def _started(
        self,
        msg: schema.SystemMessage,
        session_id: str,
        st: ClaudeRunState,
        resume: ResumeToken | None,
    ) -> list[TakopiEvent]:
        if st.factory.resume is not None:
            return []
        token = ResumeToken(engine=ENGINE, value=session_id)
        if resume is not None and token != resume:
            logger.warning("claude.session_mismatch", requested=resume.value, got=session_id)
            token = resume
        meta = {
            "cwd": msg.cwd,
            "tools": msg.tools,
            "permissionMode": msg.permission_mode,
            "output_style": msg.output_style,
            "apiKeySource": msg.api_key_source,
            "mcp_servers": msg.mcp_servers,
            "model": msg.model,
        }
        return [
            st.factory.started(
                token,
                title=effective_model(self.model) or DEFAULT_TITLE,
                meta={k: v for k, v in meta.items() if v is not None},
            )
        ]

    def _assistant_block(
        self, block: schema.ContentBlock, parent: str | None, st: ClaudeRunState
    ) -> list[TakopiEvent]:
        match block:
            case schema.ToolUseBlock(id=tool_id, name=name, input=tool_input):
                kind, title = tool_kind_and_title(name, tool_input, task_kind="subagent")
                detail: dict[str, Any] = {
                    "name": name,
                    "input": tool_input,
                    "parent_tool_use_id": parent,
                }
                if kind == "file_change":
                    detail.update(file_change_detail(tool_input_path(tool_input)))
                st.pending[tool_id] = PendingTool(kind, title, name, tool_input, detail)
                return [
                    st.factory.action_started(
                        action_id=tool_id, kind=kind, title=title, detail=detail
                    )
                ]
            case schema.ThinkingBlock(thinking=thinking):
                if not thinking.strip():
                    return []
                st.thinking_seq += 1
                return [
                    st.factory.action_completed(
                        action_id=f"claude.thinking.{st.thinking_seq}",
                        kind="note",
                        title=thinking.strip(),
                        ok=True,
                    )
                ]
            case schema.TextBlock(text=text):
                if parent is None and text:
                    st.last_text = text
                return []
            case _:
                return []

    def _tool_result(self, block: schema.ToolResultBlock, st: ClaudeRunState) -> list[TakopiEvent]:
        text = _result_text(block.content)
        pending = st.pending.pop(block.tool_use_id, None)
        if pending is None:
            kind: ActionKind = "tool"
            title = "tool result"
            detail: dict[str, Any] = {}
            name, tool_input = "", {}
        else:
            kind, title, detail = pending.kind, pending.title, dict(pending.detail)
            name, tool_input = pending.name, pending.input
        detail.update({"result_preview": text, "result_len": len(text), "is_error": block.is_error})
        events: list[TakopiEvent] = [
            st.factory.action_completed(
                action_id=block.tool_use_id,
                kind=kind,
                title=title,
                ok=not block.is_error,
                detail=detail,
            )
        ]
        if block.is_error and _DENIED_RE.search(text):
            events.append(self._denial(block.tool_use_id, name, tool_input, text, st))
        return events

    def _denial(
        self,
        tool_use_id: str | None,
        tool_name: str,
        tool_input: dict[str, Any],
        reason: str | None,
        st: ClaudeRunState,
    ) -> TakopiEvent:
        st.denial_seq += 1
        if tool_use_id:
            st.denied.add(tool_use_id)
        title = denial_title(tool_name, tool_input)
        st.denial_titles.append(title)
        detail: dict[str, Any] = {
            "tool_name": tool_name,
            "tool_input": tool_input,
            "tool_use_id": tool_use_id,
        }
        if reason:
            detail["reason"] = reason
        return st.factory.action_completed(
            action_id=f"claude.denied.{tool_use_id or st.denial_seq}",
            kind="warning",
            title=title,
            ok=False,
            detail=detail,
            message=reason or title,
            level="warning",
        )

    def _result(
        self, msg: schema.ResultMessage, st: ClaudeRunState, *, resume: ResumeToken | None
    ) -> list[TakopiEvent]:
        events: list[TakopiEvent] = []
        for denial in msg.permission_denials:
            if denial.tool_use_id and denial.tool_use_id in st.denied:
                continue
            events.append(
                self._denial(denial.tool_use_id, denial.tool_name, denial.tool_input, None, st)
            )
        usage = {
            "total_cost_usd": msg.total_cost_usd,
            "duration_ms": msg.duration_ms,
            "duration_api_ms": msg.duration_api_ms,
            "num_turns": msg.num_turns,
            "usage": msg.usage,
        }
        # A new run that never printed ``init`` has no session worth resuming.
        token = st.factory.resume or resume
        if not msg.is_error:
            answer = msg.result if msg.result else st.last_text
            events.append(
                st.factory.completed_ok(
                    answer=_with_denials(answer, st.denial_titles), resume=token, usage=usage
                )
            )
            return events
        error = msg.result or ""
        if not error:
            error = f"claude run failed ({msg.subtype or 'error'})"
            details = "; ".join(str(e) for e in msg.errors if e)
            if details:
                error = f"{error}: {details}"
        answer = st.last_text if st.last_text.strip() != error.strip() else ""
        answer = _with_denials(answer, st.denial_titles)
        events.append(
            st.factory.completed_error(error=error, answer=answer, resume=token, usage=usage)
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
        """Clean exit without a ``result`` line."""
        st: ClaudeRunState = state
        token = found_session or resume
        if token is None:
            error = "claude finished but no session_id was captured"
        else:
            error = "claude finished without a result event"
        return [
            CompletedEvent(engine=ENGINE, ok=False, answer=st.last_text, resume=token, error=error)
        ]


# -- config ---------------------------------------------------------------------------------


def build_runner(config: EngineConfig, config_path: Path) -> ClaudeRunner:
    """Build a :class:`ClaudeRunner` from the ``[claude]`` table; ``ConfigError`` if invalid."""
    model = opt_str(config, ENGINE, "model", config_path)
    allowed: list[str] | None = list(DEFAULT_ALLOWED_TOOLS)
    if "allowed_tools" in config:
        value = config["allowed_tools"]
        if value is None:
            allowed = None
        elif isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            allowed = [v.strip() for v in value] or None
        else:
            raise ConfigError(
                f"Invalid `claude.allowed_tools` in {config_path}; "
                "expected a list of tool names (empty to disable)."
            )
    permission_mode = opt_str(config, ENGINE, "permission_mode", config_path)
    if permission_mode is not None and not _PERMISSION_MODE_RE.match(permission_mode):
        raise ConfigError(
            f"Invalid `claude.permission_mode` in {config_path}: {permission_mode!r} "
            "(expected a mode name such as 'acceptEdits', 'plan' or 'bypassPermissions')."
        )
    return ClaudeRunner(
        model=model,
        allowed_tools=allowed,
        dangerously_skip_permissions=opt_bool(
            config, ENGINE, "dangerously_skip_permissions", config_path
        ),
        permission_mode=permission_mode,
        use_api_billing=opt_bool(config, ENGINE, "use_api_billing", config_path),
    )


BACKEND = EngineBackend(id=ENGINE, build_runner=build_runner, install_cmd=INSTALL_CMD)

__all__ = [
    "BACKEND",
    "ClaudeRunState",
    "ClaudeRunner",
    "build_runner",
    "denial_title",
    "input_summary",
]
