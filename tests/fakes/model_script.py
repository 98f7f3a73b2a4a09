"""What the fake model answers: a request parsed into a wire-neutral :class:`Conversation`,
then the turn decided from its prompt's keywords (:func:`plan_turn`; the keywords are listed
in :mod:`tests.fakes.model_server`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SHELL_TOOL_NAMES = ("exec_command", "shell", "Bash", "bash")
FAIL_MESSAGE = "fake model: FAIL400 requested by the prompt"

# --------------------------------------------------------------------------------------------
# Conversation parsing (wire format -> neutral form)
# --------------------------------------------------------------------------------------------


@dataclass
class Conversation:
    """The parts of a model request that the script looks at, in a wire-neutral form."""

    user_texts: list[str] = field(default_factory=list)
    # ("user", text) | ("call", call_id) | ("result", call_id, text), in conversation order
    items: list[tuple[str, ...]] = field(default_factory=list)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def prompt_index(self) -> int | None:
        """Index in :attr:`items` of the last user text that does not start with ``<``."""
        for idx in range(len(self.items) - 1, -1, -1):
            item = self.items[idx]
            if item[0] == "user" and _is_prompt_text(item[1]):
                return idx
        return None

    @property
    def prompt(self) -> str | None:
        """The scripted prompt (quotes added by opencode stripped)."""
        idx = self.prompt_index
        return None if idx is None else _clean_prompt(self.items[idx][1])

    def earlier_prompts(self) -> list[str]:
        """User prompts before the current one (what a resumed session carried over)."""
        idx = self.prompt_index
        if idx is None:
            return []
        return [
            _clean_prompt(item[1])
            for item in self.items[:idx]
            if item[0] == "user" and _is_prompt_text(item[1])
        ]

    def calls_since_prompt(self) -> list[str]:
        """Tool call ids the assistant issued after the current prompt."""
        start = self.prompt_index or 0
        return [item[1] for item in self.items[start:] if item[0] == "call"]

    def results_since_prompt(self) -> dict[str, str]:
        """Tool results (call id -> text) that came back after the current prompt."""
        start = self.prompt_index or 0
        return {item[1]: item[2] for item in self.items[start:] if item[0] == "result"}

    def shell_tool(self) -> tuple[str, dict[str, Any]] | None:
        """The CLI's shell tool: (name, JSON schema of its parameters), if offered."""
        for name in SHELL_TOOL_NAMES:
            if name in self.tools:
                return name, self.tools[name]
        return None


def _is_prompt_text(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not stripped.startswith("<")


def _clean_prompt(text: str) -> str:
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"':
        stripped = stripped[1:-1]
    return stripped


def _content_text(content: Any) -> str:
    """Text of a message/tool-result content that may be a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and "content" in part:
                parts.append(_content_text(part["content"]))
        return "".join(parts)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return ""


def _text_blocks(content: Any) -> list[str]:
    """User text blocks of a message content (string or list of typed parts)."""
    if isinstance(content, str):
        return [content]
    blocks: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                blocks.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                text = part.get("text")
                if isinstance(text, str):
                    blocks.append(text)
    return blocks


def _parse_responses(body: dict[str, Any], conv: Conversation) -> None:
    raw_input = body.get("input")
    items: list[Any]
    if isinstance(raw_input, str):
        items = [{"type": "message", "role": "user", "content": raw_input}]
    else:
        items = raw_input if isinstance(raw_input, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            for text in _text_blocks(item.get("content")):
                conv.user_texts.append(text)
                conv.items.append(("user", text))
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            conv.items.append(("call", str(item.get("call_id") or item.get("id"))))
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            conv.items.append(
                ("result", str(item.get("call_id")), _content_text(item.get("output")))
            )
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            conv.tools[tool["name"]] = tool.get("parameters") or {}


def _parse_chat(body: dict[str, Any], conv: Conversation) -> None:
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        if role == "user":
            for text in _text_blocks(msg.get("content")):
                conv.user_texts.append(text)
                conv.items.append(("user", text))
        elif role == "assistant":
            for call in msg.get("tool_calls") or []:
                if isinstance(call, dict):
                    conv.items.append(("call", str(call.get("id"))))
        elif role == "tool":
            conv.items.append(
                ("result", str(msg.get("tool_call_id")), _content_text(msg.get("content")))
            )
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            conv.tools[fn["name"]] = fn.get("parameters") or {}


def _parse_anthropic(body: dict[str, Any], conv: Conversation) -> None:
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        content = msg.get("content")
        blocks: list[Any] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        )
        for block in blocks:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if role == "user" and kind == "text" and isinstance(block.get("text"), str):
                conv.user_texts.append(block["text"])
                conv.items.append(("user", block["text"]))
            elif role == "user" and kind == "tool_result":
                conv.items.append(
                    ("result", str(block.get("tool_use_id")), _content_text(block.get("content")))
                )
            elif role == "assistant" and kind == "tool_use":
                conv.items.append(("call", str(block.get("id"))))
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            conv.tools[tool["name"]] = tool.get("input_schema") or {}


def parse_conversation(wire: str, body: dict[str, Any]) -> Conversation:
    """Parse a request body of the given wire (``responses``, ``chat``, ``anthropic``)."""
    conv = Conversation()
    {"responses": _parse_responses, "chat": _parse_chat, "anthropic": _parse_anthropic}[wire](
        body, conv
    )
    return conv


# --------------------------------------------------------------------------------------------
# Script: what to answer
# --------------------------------------------------------------------------------------------

_RUN_RE = re.compile(r"^\s*RUN:\s*(?P<cmd>.+?)\s*$", re.MULTILINE)
_SLEEP_RE = re.compile(r"^\s*SLEEP\s+(?P<secs>\d+(?:\.\d+)?)\s*$", re.MULTILINE)


def _has_keyword(prompt: str, word: str) -> bool:
    return re.search(rf"^\s*{word}\s*$", prompt, re.MULTILINE) is not None


@dataclass(frozen=True)
class ToolCall:
    """A tool call the fake asks the CLI to make."""

    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Script:
    """The fake's decision for one model request."""

    action: str  # "answer" | "tool" | "fail" | "sleep"
    text: str = ""
    tool_call: ToolCall | None = None
    thinking: str | None = None
    sleep: float = 0.0


def _tool_output(text: str) -> str:
    # codex wraps the output ("Chunk ID: …\nWall time: …\nOutput:\n<out>"); keep the stable part.
    marker = "\nOutput:\n"
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.strip()


def _shell_arguments(schema: dict[str, Any], cmd: str) -> dict[str, Any]:
    props = schema.get("properties") if isinstance(schema, dict) else None
    props = props if isinstance(props, dict) else {}
    key = "cmd" if "cmd" in props and "command" not in props else "command"
    args: dict[str, Any] = {key: cmd}
    if "description" in props:
        args["description"] = f"Run {cmd}"
    return args


def plan_turn(conv: Conversation, seq: int) -> Script:
    """Decide the reply to one request; ``seq`` makes tool call ids unique."""
    prompt = conv.prompt or ""
    thinking = "Thinking about the request." if _has_keyword(prompt, "THINK") else None
    if _has_keyword(prompt, "FAIL400"):
        return Script(action="fail", text=FAIL_MESSAGE)
    sleep_match = _SLEEP_RE.search(prompt)
    if sleep_match:
        secs = float(sleep_match.group("secs"))
        return Script(action="sleep", text=f"slept {secs:g}s", sleep=secs, thinking=thinking)
    if _has_keyword(prompt, "HISTORY"):
        earlier = conv.earlier_prompts()
        lines = [f"HISTORY: {len(earlier)} earlier prompt(s)"]
        lines += ["- " + p.replace("\n", " / ") for p in earlier]
        return Script(action="answer", text="\n".join(lines), thinking=thinking)
    commands = [m.group("cmd") for m in _RUN_RE.finditer(prompt)]
    if commands:
        shell = conv.shell_tool()
        if shell is None:
            return Script(action="answer", text="no shell tool was offered", thinking=thinking)
        calls = conv.calls_since_prompt()
        results = conv.results_since_prompt()
        if len(calls) < len(commands):
            cmd = commands[len(calls)]
            name, schema = shell
            call = ToolCall(
                call_id=f"call_{seq}", name=name, arguments=_shell_arguments(schema, cmd)
            )
            return Script(action="tool", text=f"Running `{cmd}`.", tool_call=call)
        outputs = [_tool_output(results.get(cid, "")) for cid in calls]
        text = "\n".join(
            f"`{cmd}` printed: {out}" for cmd, out in zip(commands, outputs, strict=False)
        )
        return Script(action="answer", text=text, thinking=thinking)
    return Script(action="answer", text=f"ok: {prompt}", thinking=thinking)


__all__ = [
    "FAIL_MESSAGE",
    "SHELL_TOOL_NAMES",
    "Conversation",
    "Script",
    "ToolCall",
    "parse_conversation",
    "plan_turn",
]
