"""A scripted fake model provider speaking streamed SSE on 127.0.0.1.

Wire formats (all streamed as ``text/event-stream``):

* OpenAI Responses — ``POST /v1/responses`` (codex, pi ``openai-responses``); the full event
  set is sent unless the server was built with ``minimal=True``.
* OpenAI Chat Completions — ``POST /v1/chat/completions`` (opencode, pi ``openai-completions``).
* Anthropic Messages — ``POST /v1/messages`` (claude, pi ``anthropic-messages``).

The behaviour is scripted from the prompt, i.e. the last user text that does not start with
``<`` (CLIs inject ``<environment_context>``/``<system-reminder>`` blocks; opencode wraps the
prompt in literal double quotes, which are stripped). Keywords, each on its own line:

* ``RUN: <cmd>`` — request the CLI's shell tool (found by name in the request's tool list) for
  every ``RUN:`` line in turn, then answer with the tool outputs once all results came back.
* ``HISTORY`` — answer listing every earlier user prompt seen in the request.
* ``FAIL400`` — reply HTTP 400 with a JSON error body.
* ``SLEEP <seconds>`` — hold the turn that long (or until the server stops), then answer.
* ``THINK`` — prefix the answer with a reasoning/thinking block.

Anything else gets ``ok: <prompt>`` as the answer. Every request is recorded (path, headers
without credentials, JSON body) in :attr:`FakeModelServer.requests`.

Run standalone with ``python -m tests.fakes.model_server [--port N] [--minimal]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Conversation",
    "FakeModelServer",
    "RecordedRequest",
    "Script",
    "parse_conversation",
    "plan_turn",
]

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"}
)
SHELL_TOOL_NAMES = ("exec_command", "shell", "Bash", "bash")
FAIL_MESSAGE = "fake model: FAIL400 requested by the prompt"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received.

    Credential headers are removed from ``headers``; only their names are kept, in
    ``credential_headers``. ``wire``/``prompt``/``action`` are set for model requests.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    wire: str | None = None
    prompt: str | None = None
    action: str | None = None
    credential_headers: tuple[str, ...] = ()

    def user_texts(self) -> list[str]:
        """All user text blocks in the request, in order (empty for non-model requests)."""
        if self.wire is None or not isinstance(self.body, dict):
            return []
        return parse_conversation(self.wire, self.body).user_texts


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


# --------------------------------------------------------------------------------------------
# SSE stream builders
# --------------------------------------------------------------------------------------------

USAGE_IN, USAGE_OUT = 100, 20


def responses_events(script: Script, seq: int, model: str, minimal: bool) -> Iterator[str]:
    """SSE frames for an OpenAI Responses stream."""
    resp_id = f"resp_{seq}"
    counter = iter(range(1_000_000))
    output: list[dict[str, Any]] = []

    def frame(kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": next(counter), **data}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    base = {"id": resp_id, "object": "response", "created_at": int(time.time()), "model": model}
    if not minimal:
        yield frame("response.created", response={**base, "status": "in_progress", "output": []})
        yield frame(
            "response.in_progress", response={**base, "status": "in_progress", "output": []}
        )

    items: list[dict[str, Any]] = []
    if script.thinking:
        items.append(
            {
                "type": "reasoning",
                "id": f"rs_{seq}",
                "summary": [{"type": "summary_text", "text": script.thinking}],
            }
        )
    if script.text:
        items.append(
            {
                "type": "message",
                "id": f"msg_{seq}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": script.text, "annotations": []}],
            }
        )
    if script.tool_call:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{seq}",
                "call_id": script.tool_call.call_id,
                "name": script.tool_call.name,
                "arguments": json.dumps(script.tool_call.arguments),
                "status": "completed",
            }
        )

    for idx, item in enumerate(items):
        if not minimal:
            yield from _responses_item_frames(frame, idx, item)
        yield frame("response.output_item.done", output_index=idx, item=item)
        output.append(item)

    usage = {
        "input_tokens": USAGE_IN,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": USAGE_OUT,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": USAGE_IN + USAGE_OUT,
    }
    yield frame(
        "response.completed",
        response={**base, "status": "completed", "output": output, "usage": usage},
    )


def _responses_item_frames(
    frame: Callable[..., str], idx: int, item: dict[str, Any]
) -> Iterator[str]:
    kind = item["type"]
    if kind == "message":
        text = item["content"][0]["text"]
        yield frame(
            "response.output_item.added",
            output_index=idx,
            item={**item, "status": "in_progress", "content": []},
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": item["id"], "output_index": idx, "content_index": 0}
        yield frame("response.content_part.added", **ids, part=part)
        yield frame("response.output_text.delta", **ids, delta=text)
        yield frame("response.output_text.done", **ids, text=text)
        yield frame("response.content_part.done", **ids, part={**part, "text": text})
    elif kind == "function_call":
        yield frame(
            "response.output_item.added",
            output_index=idx,
            item={**item, "status": "in_progress", "arguments": ""},
        )
        ids = {"item_id": item["id"], "output_index": idx}
        yield frame("response.function_call_arguments.delta", **ids, delta=item["arguments"])
        yield frame("response.function_call_arguments.done", **ids, arguments=item["arguments"])
    elif kind == "reasoning":
        text = item["summary"][0]["text"]
        yield frame("response.output_item.added", output_index=idx, item={**item, "summary": []})
        ids = {"item_id": item["id"], "output_index": idx, "summary_index": 0}
        part = {"type": "summary_text", "text": ""}
        yield frame("response.reasoning_summary_part.added", **ids, part=part)
        yield frame("response.reasoning_summary_text.delta", **ids, delta=text)
        yield frame("response.reasoning_summary_text.done", **ids, text=text)
        yield frame("response.reasoning_summary_part.done", **ids, part={**part, "text": text})


def chat_events(script: Script, seq: int, model: str, include_usage: bool) -> Iterator[str]:
    """SSE frames for an OpenAI Chat Completions stream."""
    base = {
        "id": f"chatcmpl-{seq}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if script.thinking:
        yield chunk({"reasoning_content": script.thinking})
    if script.text:
        yield chunk({"content": script.text})
    if script.tool_call:
        call = {
            "index": 0,
            "id": script.tool_call.call_id,
            "type": "function",
            "function": {
                "name": script.tool_call.name,
                "arguments": json.dumps(script.tool_call.arguments),
            },
        }
        yield chunk({"tool_calls": [call]})
    yield chunk({}, "tool_calls" if script.tool_call else "stop")
    if include_usage:
        usage = {
            "prompt_tokens": USAGE_IN,
            "completion_tokens": USAGE_OUT,
            "total_tokens": USAGE_IN + USAGE_OUT,
        }
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def anthropic_events(script: Script, seq: int, model: str) -> Iterator[str]:
    """SSE frames for an Anthropic Messages stream."""

    def frame(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    yield frame(
        "message_start",
        message={
            "id": f"msg_fake_{seq}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": USAGE_IN,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        },
    )
    index = 0
    if script.thinking:
        yield frame(
            "content_block_start",
            index=index,
            content_block={"type": "thinking", "thinking": "", "signature": ""},
        )
        yield frame(
            "content_block_delta",
            index=index,
            delta={"type": "thinking_delta", "thinking": script.thinking},
        )
        yield frame(
            "content_block_delta",
            index=index,
            delta={"type": "signature_delta", "signature": "ZmFrZS1zaWduYXR1cmU="},
        )
        yield frame("content_block_stop", index=index)
        index += 1
    if script.text:
        yield frame("content_block_start", index=index, content_block={"type": "text", "text": ""})
        yield frame(
            "content_block_delta", index=index, delta={"type": "text_delta", "text": script.text}
        )
        yield frame("content_block_stop", index=index)
        index += 1
    if script.tool_call:
        yield frame(
            "content_block_start",
            index=index,
            content_block={
                "type": "tool_use",
                "id": script.tool_call.call_id.replace("call_", "toolu_"),
                "name": script.tool_call.name,
                "input": {},
            },
        )
        yield frame(
            "content_block_delta",
            index=index,
            delta={
                "type": "input_json_delta",
                "partial_json": json.dumps(script.tool_call.arguments),
            },
        )
        yield frame("content_block_stop", index=index)
    yield frame(
        "message_delta",
        delta={
            "stop_reason": "tool_use" if script.tool_call else "end_turn",
            "stop_sequence": None,
        },
        usage={"output_tokens": USAGE_OUT},
    )
    yield frame("message_stop")


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------

_WIRE_BY_PATH = {
    "/v1/responses": "responses",
    "/responses": "responses",
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/messages": "anthropic",
    "/messages": "anthropic",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            sys.stderr.write("fake-model: " + (format % args) + "\n")

    # -- request plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, frames: Iterator[str]) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in frames:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record(self, body: Any, **extra: Any) -> RecordedRequest:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k: v for k, v in headers.items() if k not in SECRET_HEADERS},
            body=body,
            credential_headers=tuple(sorted(k for k in headers if k in SECRET_HEADERS)),
            **extra,
        )
        self.server.fake._add(rec)
        return rec

    # -- verbs --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._record(None)
        if path.rstrip("/") in ("/v1/models", "/models"):
            model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, {"error": {"message": f"no route for GET {path}"}})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._record(raw.decode("utf-8", "replace"))
            self._send_json(400, {"error": {"message": "fake model: body is not JSON"}})
            return
        wire = _WIRE_BY_PATH.get(path.rstrip("/"))
        if wire is None or not isinstance(body, dict):
            self._record(body)
            self._send_json(404, {"error": {"message": f"no route for POST {path}"}})
            return
        fake = self.server.fake
        seq = fake._next_seq()
        conv = parse_conversation(wire, body)
        script = plan_turn(conv, seq)
        self._record(body, wire=wire, prompt=conv.prompt, action=script.action)
        if script.action == "fail":
            self._send_error_400(wire, script.text)
            return
        if script.action == "sleep":
            fake._stopping.wait(script.sleep)
        self._send_sse(self._frames(wire, script, seq, body))

    def _send_error_400(self, wire: str, message: str) -> None:
        if wire == "anthropic":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": message},
            }
        else:
            payload = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "fake_fail400",
                }
            }
        self._send_json(400, payload)

    def _frames(self, wire: str, script: Script, seq: int, body: dict[str, Any]) -> Iterator[str]:
        model = str(body.get("model") or "fake-model")
        if wire == "responses":
            return responses_events(script, seq, model, self.server.fake.minimal)
        if wire == "chat":
            opts = body.get("stream_options")
            include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
            return chat_events(script, seq, model, include_usage)
        return anthropic_events(script, seq, model)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-stream on cancellation; that is expected, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeModelServer:
    """The fake provider; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        minimal: bool = False,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.minimal = minimal
        self.verbose = verbose
        self._requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeModelServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        server = _Server((self.host, self.requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wake every request held by ``SLEEP``."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    # -- recording ----------------------------------------------------------------------------

    def _add(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _next_seq(self) -> int:
        with self._cond:
            self._seq += 1
            return self._seq

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far."""
        with self._cond:
            return list(self._requests)

    def model_requests(self) -> list[RecordedRequest]:
        """Requests to one of the model endpoints."""
        return [r for r in self.requests if r.wire is not None]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._cond:
            self._requests.clear()

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 10.0
    ) -> RecordedRequest | None:
        """Block until a recorded request matches ``predicate`` (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for rec in self._requests:
                    if predicate(rec):
                        return rec
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, printing the base URL on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--minimal", action="store_true", help="Responses: only the two events")
    parser.add_argument("--record", help="append every request as JSON lines to this file")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeModelServer(args.host, args.port, minimal=args.minimal, verbose=args.verbose)
    if args.record:
        record_path = args.record
        add = fake._add

        def add_and_write(rec: RecordedRequest) -> None:
            add(rec)
            with open(record_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec.__dict__, default=str) + "\n")

        fake._add = add_and_write  # type: ignore[method-assign]
    fake.start()
    print(fake.base_url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
