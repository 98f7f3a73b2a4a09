"""The fake model server itself, over real HTTP on 127.0.0.1 (no agent CLIs needed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.model_server import FakeModelServer
from tests.real_engines.engines import REPO_ROOT

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def sse(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """Parse an SSE body into (event name, data) pairs; ``[DONE]`` kept as a string."""
    assert response.headers["content-type"].startswith("text/event-stream")
    frames: list[tuple[str | None, Any]] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                raw = line[len("data: ") :]
                data = raw if raw == "[DONE]" else json.loads(raw)
        frames.append((name, data))
    return frames


def post(fake: FakeModelServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        fake.base_url + path,
        json=body,
        headers={"Authorization": "Bearer secret-value", "X-Custom": "kept"},
        timeout=10,
    )


BASH_TOOL_CHAT = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
        },
    },
}


def test_responses_plain_prompt_streams_full_event_set(fake: FakeModelServer) -> None:
    body = {
        "model": "gpt-5.5",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "<environment_context>x"}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
        "tools": [{"type": "function", "name": "exec_command", "parameters": {}}],
    }
    frames = sse(post(fake, "/v1/responses", body))
    names = [name for name, _ in frames]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["type"] for _, data in frames] == names
    completed = frames[-1][1]["response"]
    assert completed["output"][0]["content"][0]["text"] == "ok: hi"
    assert completed["usage"]["total_tokens"] == 120


def test_responses_minimal_mode_and_exec_command_tool() -> None:
    with FakeModelServer(minimal=True) as fake:
        items: list[dict[str, Any]] = [
            {"type": "message", "role": "user", "content": "go\nRUN: echo hi"},
        ]
        body = {
            "input": items,
            "tools": [
                {
                    "type": "function",
                    "name": "exec_command",
                    "parameters": {"properties": {"cmd": {"type": "string"}}},
                }
            ],
        }
        frames = sse(post(fake, "/v1/responses", body))
        assert [name for name, _ in frames] == [
            "response.output_item.done",
            "response.output_item.done",
            "response.completed",
        ]
        call = frames[1][1]["item"]
        assert call["type"] == "function_call"
        assert call["name"] == "exec_command"
        assert json.loads(call["arguments"]) == {"cmd": "echo hi"}

        items += [
            {"type": "function_call", "call_id": call["call_id"], "name": "exec_command"},
            {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": "Chunk ID: 1\nWall time: 0.01\nProcess exited with code 0\nOutput:\nhi\n",
            },
        ]
        frames = sse(post(fake, "/v1/responses", body))
        message = frames[0][1]["item"]
        assert message["content"][0]["text"] == "`echo hi` printed: hi"
        assert [r.action for r in fake.model_requests()] == ["tool", "answer"]


def test_chat_completions_tool_round_trip(fake: FakeModelServer) -> None:
    # opencode wraps the prompt in literal quotes; the fake strips them.
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "you are an agent"},
        {"role": "user", "content": [{"type": "text", "text": '"please\nRUN: echo hi"'}]},
    ]
    body = {
        "model": "fake-model",
        "messages": messages,
        "tools": [BASH_TOOL_CHAT],
        "stream_options": {"include_usage": True},
    }
    frames = sse(post(fake, "/v1/chat/completions", body))
    assert frames[-1] == (None, "[DONE]")
    chunks = [data for _, data in frames[:-1]]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert len(calls) == 1
    assert calls[0]["function"]["name"] == "bash"
    args = json.loads(calls[0]["function"]["arguments"])
    assert args == {"command": "echo hi", "description": "Run echo hi"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 120

    messages += [
        {"role": "assistant", "content": "", "tool_calls": [{"id": calls[0]["id"]}]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "hi\n"},
    ]
    frames = sse(post(fake, "/v1/chat/completions", body))
    text = "".join(
        data["choices"][0]["delta"].get("content") or ""
        for _, data in frames[:-1]
        if data["choices"]
    )
    assert text == "`echo hi` printed: hi"
    assert fake.model_requests()[0].prompt == "please\nRUN: echo hi"


def test_anthropic_history_lists_earlier_prompts_and_scrubs_credentials(
    fake: FakeModelServer,
) -> None:
    body = {
        "model": "claude-x",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ignore</system-reminder>"},
                    {"type": "text", "text": "second\nline"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": [{"type": "text", "text": "HISTORY"}]},
        ],
    }
    frames = sse(post(fake, "/v1/messages?beta=true", body))
    names = [name for name, _ in frames]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    text = "".join(data["delta"]["text"] for name, data in frames if name == "content_block_delta")
    assert text == "HISTORY: 2 earlier prompt(s)\n- first question\n- second / line"
    assert frames[-2][1]["delta"]["stop_reason"] == "end_turn"

    (rec,) = fake.requests
    assert rec.path == "/v1/messages"
    assert rec.query == {"beta": ["true"]}
    assert "authorization" not in rec.headers
    assert rec.credential_headers == ("authorization",)
    assert rec.headers["x-custom"] == "kept"
    assert "secret-value" not in json.dumps(rec.headers)


def test_anthropic_tool_use_block_uses_input_json_delta(fake: FakeModelServer) -> None:
    body = {
        "messages": [{"role": "user", "content": "RUN: ls"}],
        "tools": [{"name": "Bash", "input_schema": {"properties": {"command": {}}}}],
    }
    frames = sse(post(fake, "/v1/messages", body))
    starts = [data["content_block"] for name, data in frames if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "Bash"
    deltas = [data["delta"] for name, data in frames if name == "content_block_delta"]
    assert json.loads(deltas[-1]["partial_json"]) == {"command": "ls"}
    assert frames[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("path", "error_key"),
    [("/v1/responses", "code"), ("/v1/chat/completions", "code"), ("/v1/messages", "type")],
)
def test_fail400_returns_json_error(fake: FakeModelServer, path: str, error_key: str) -> None:
    body = {
        "input": [{"type": "message", "role": "user", "content": "FAIL400"}],
        "messages": [{"role": "user", "content": "FAIL400"}],
    }
    response = post(fake, path, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "FAIL400" in error["message"]
    assert error_key in error
    assert fake.model_requests()[0].action == "fail"


def test_unknown_route_is_404_and_recorded(fake: FakeModelServer) -> None:
    response = post(fake, "/v1/embeddings", {"input": "x"})
    assert response.status_code == 404
    assert fake.requests[0].path == "/v1/embeddings"
    assert fake.requests[0].wire is None
    models = httpx.get(fake.base_url + "/v1/models", timeout=10).json()
    assert models["data"][0]["id"] == "fake-model"


def test_sleep_holds_the_turn_until_stop() -> None:
    fake = FakeModelServer().start()
    result: dict[str, Any] = {}

    def call() -> None:
        body = {"messages": [{"role": "user", "content": "SLEEP 60"}]}
        try:
            result["response"] = httpx.post(
                fake.base_url + "/v1/chat/completions", json=body, timeout=30
            )
        except httpx.HTTPError as exc:
            result["error"] = exc

    worker = threading.Thread(target=call)
    worker.start()
    rec = fake.wait_for(lambda r: r.action == "sleep", timeout=10)
    assert rec is not None and rec.prompt == "SLEEP 60"
    assert worker.is_alive()  # still held
    fake.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    response = result.get("response")
    assert response is not None, result
    text = "".join(
        data["choices"][0]["delta"].get("content") or ""
        for _, data in sse(response)[:-1]
        if data["choices"]
    )
    assert text == "slept 60s"


def test_runs_as_a_module_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.model_server", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        body = {"messages": [{"role": "user", "content": "hello"}]}
        response = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=10)
        assert "ok: hello" in response.text
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    assert rc == 0
