"""Canonical answers -> the Responses API's ``response`` object and its output items.

The object echoes the request's settings the way OpenAI does (``instructions``, ``tools``,
``text``, ``reasoning``, ``store``...), so the SDKs' typed models parse it; ``status`` is
``completed``, or ``incomplete`` with ``incomplete_details.reason`` when the answer was cut
(``max_output_tokens``) or filtered (``content_filter``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from modelmix.types import ChatResponse, FinishReason, ToolCall, Usage
from modelmix.wire.openai_responses.request import ResponsesRequest
from modelmix.wire.openai_responses.vocabulary import INCOMPLETE_REASON

__all__ = [
    "function_call_item",
    "message_item",
    "output_items",
    "render_response",
    "response_object",
    "usage_object",
]


def response_id(request_id: str) -> str:
    return "resp_" + request_id


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def output_items(resp: ChatResponse, rid: str) -> list[dict[str, Any]]:
    """The ``output`` list: the upstream's own items when it spoke Responses, else a message
    item (when there is text) and one ``function_call`` item per tool call."""
    if resp.native is not None:
        return list(resp.native)
    status = "incomplete" if resp.finish_reason in INCOMPLETE_REASON else "completed"
    items: list[dict[str, Any]] = []
    if resp.content or not resp.tool_calls:
        items.append(message_item(f"msg_{rid}", resp.content or "", status))
    for i, call in enumerate(resp.tool_calls):
        items.append(function_call_item(f"fc_{rid}_{i}", call))
    return items


def _echo(native: ResponsesRequest) -> dict[str, Any]:
    """The request settings a Response object repeats."""
    body = native.body
    get = body.get
    text: dict[str, Any] = body["text"] if isinstance(get("text"), dict) else {}
    reasoning: dict[str, Any] = body["reasoning"] if isinstance(get("reasoning"), dict) else {}
    return {
        "instructions": get("instructions"),
        "max_output_tokens": get("max_output_tokens"),
        "max_tool_calls": None,
        "metadata": get("metadata") or {},
        "parallel_tool_calls": get("parallel_tool_calls", True) is not False,
        "previous_response_id": native.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",
        "store": native.store,
        "temperature": get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": get("tool_choice") or "auto",
        "tools": get("tools") or [],
        "top_logprobs": 0,
        "top_p": get("top_p", 1.0),
        "truncation": get("truncation") or "disabled",
        "user": get("user"),
    }


def response_object(
    native: ResponsesRequest,
    *,
    rid: str,
    model: str,
    created_at: int,
    status: str = "completed",
    output: list[dict[str, Any]] | None = None,
    usage: Usage | None = None,
    finish: FinishReason | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object; ``rid`` is the request id (the response id is ``resp_<rid>``)."""
    incomplete = INCOMPLETE_REASON.get(finish or "stop")
    if incomplete is not None and status == "completed":
        status = "incomplete"
    return {
        "id": response_id(rid),
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output or [],
        **_echo(native),
        "usage": usage_object(usage) if usage is not None else None,
    }


def render_response(
    native: ResponsesRequest, resp: ChatResponse, *, rid: str, model: str
) -> dict[str, Any]:
    """The complete ``response`` object of a non-streamed answer."""
    return response_object(
        native,
        rid=rid,
        model=model,
        created_at=resp.created or int(time.time()),
        output=output_items(resp, rid),
        usage=resp.usage,
        finish=resp.finish_reason,
    )


def dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)
