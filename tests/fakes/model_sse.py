"""The fake model's streams: one :class:`~tests.fakes.model_script.Script` as the SSE frames of
the OpenAI Responses, OpenAI Chat Completions or Anthropic Messages wire format."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.fakes.model_script import Script

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


__all__ = ["anthropic_events", "chat_events", "responses_events"]
