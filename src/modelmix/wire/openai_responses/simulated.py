"""The simulated upstream's Responses API (``POST /openai/v1/responses``), JSON and stream.

It answers like the other simulated formats (same ``Ask`` -> ``Answer``), in the Responses wire
format: output items (a ``reasoning`` item first when the request sets ``reasoning.effort``, a
message or a ``function_call``), usage with reasoning tokens, and the SSE event sequence with
``sequence_number``. Errors and keys are OpenAI's (inherited from ``OpenAIWire``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from modelmix.simulated.answers import Answer, Ask, Tool
from modelmix.simulated.wire import (
    RequestError,
    content_chars,
    new_id,
    split_arguments,
    split_text,
    text_of,
)
from modelmix.wire.openai_chat.simulated import OpenAIWire
from modelmix.wire.openai_responses.vocabulary import INCOMPLETE_REASON

__all__ = ["ResponsesWire"]

#: Reasoning tokens a simulated answer reports when the request asked for reasoning.
REASONING_TOKENS = 16
REASONING_SUMMARY = "Simulated reasoning: read the question, then answer it."


@dataclass(slots=True)
class ResponsesAsk(Ask):
    """An ``Ask`` that also remembers whether the request asked for reasoning."""

    reasoning: bool = False


def _read_items(items: list[Any], ask: Ask) -> None:
    names: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestError(f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]")
        kind = item.get("type") or "message"
        if kind == "message":
            ask.prompt_chars += content_chars(item.get("content"))
            if item.get("role") == "user":
                ask.last_user_text = text_of(item.get("content"))
                ask.tool_result = None
        elif kind == "function_call":
            names[str(item.get("call_id"))] = str(item.get("name"))
            ask.prompt_chars += len(str(item.get("arguments", "")))
        elif kind == "function_call_output":
            call_id = str(item.get("call_id"))
            output = item.get("output")
            text = output if isinstance(output, str) else text_of(output)
            ask.prompt_chars += len(text)
            ask.tool_result = (names.get(call_id, call_id), text)
        elif kind != "reasoning":
            raise RequestError(f"Invalid value: '{kind}'.", f"input[{i}].type")
    last = items[-1] if items else {}
    if isinstance(last, dict) and last.get("type") != "function_call_output":
        ask.tool_result = None


def _read_tools(body: dict[str, Any], ask: Ask) -> None:
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise RequestError("Only function tools are simulated.", f"tools[{i}].type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError(
                f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name"
            )
        parameters = tool.get("parameters")
        ask.tools.append(Tool(name, parameters if isinstance(parameters, dict) else {}))
        ask.prompt_chars += len(name) + len(orjson.dumps(parameters)) if parameters else len(name)
    choice = body.get("tool_choice")
    if choice == "none":
        ask.no_tools = True
    elif isinstance(choice, dict) and isinstance(choice.get("name"), str):
        ask.forced_tool = choice["name"]


def _read_format(body: dict[str, Any], ask: Ask) -> None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return
    if fmt.get("type") == "json_object":
        ask.json_mode = True
    elif fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise RequestError(
                "Missing required parameter: 'text.format.name'.", "text.format.name"
            )
        schema = fmt.get("schema")
        ask.json_schema = schema if isinstance(schema, dict) else {"type": "object"}


def _reasoning(body: dict[str, Any]) -> bool:
    reasoning = body.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("effort") not in (None, "none")


class ResponsesWire(OpenAIWire):
    kind = "openai-responses"

    def parse(self, body: Any, request: web.Request) -> Ask:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("Missing required parameter: 'model'.", "model")
        if body.get("previous_response_id") is not None:
            raise RequestError("Previous response not found (the simulator stores nothing).")
        raw = body.get("input")
        items = (
            [{"type": "message", "role": "user", "content": raw}] if isinstance(raw, str) else raw
        )
        if not isinstance(items, list):
            raise RequestError("Missing required parameter: 'input'.", "input")
        max_tokens = body.get("max_output_tokens")
        ask = ResponsesAsk(model=model, stream=body.get("stream") is True)
        ask.max_tokens = max_tokens if isinstance(max_tokens, int) else None
        if isinstance(body.get("instructions"), str):
            ask.prompt_chars += len(body["instructions"])
        _read_items(items, ask)
        _read_tools(body, ask)
        _read_format(body, ask)
        ask.reasoning = _reasoning(body)
        return ask

    # -- answers ------------------------------------------------------------------------------

    def _items(self, answer: Answer, reasoning: bool, rid: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reasoning:
            summary = [{"type": "summary_text", "text": REASONING_SUMMARY}]
            items.append({"id": f"rs_{rid}", "type": "reasoning", "summary": summary})
        if answer.tool_name is not None:
            items.append(
                {
                    "id": f"fc_{rid}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": new_id("call_"),
                    "name": answer.tool_name,
                    "arguments": answer.tool_arguments,
                }
            )
        else:
            part = {"type": "output_text", "text": answer.text or "", "annotations": []}
            status = "incomplete" if answer.finish == "length" else "completed"
            items.append(
                {
                    "id": f"msg_{rid}",
                    "type": "message",
                    "status": status,
                    "role": "assistant",
                    "content": [part],
                }
            )
        return items

    def _object(
        self, ask: Ask, answer: Answer, rid: str, items: list[dict[str, Any]], reasoning: bool
    ) -> dict[str, Any]:
        cut = answer.finish == "length"
        extra = REASONING_TOKENS if reasoning else 0
        return {
            "id": f"resp_{rid}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "incomplete" if cut else "completed",
            "incomplete_details": {"reason": INCOMPLETE_REASON["length"]} if cut else None,
            "error": None,
            "model": ask.model,
            "output": items,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": answer.prompt_tokens,
                "input_tokens_details": {"cached_tokens": answer.cached_tokens},
                "output_tokens": answer.completion_tokens + extra,
                "output_tokens_details": {"reasoning_tokens": extra},
                "total_tokens": answer.prompt_tokens + answer.completion_tokens + extra,
            },
        }

    def response(self, ask: Ask, answer: Answer) -> bytes:
        rid = new_id("")
        reasoning = isinstance(ask, ResponsesAsk) and ask.reasoning
        items = self._items(answer, reasoning, rid)
        return orjson.dumps(self._object(ask, answer, rid, items, reasoning))

    def stream(self, ask: Ask, answer: Answer) -> list[bytes]:
        rid = new_id("")
        reasoning = isinstance(ask, ResponsesAsk) and ask.reasoning
        items = self._items(answer, reasoning, rid)
        final = self._object(ask, answer, rid, items, reasoning)
        frames = _Frames()
        head = {**final, "status": "in_progress", "output": [], "usage": None}
        frames.add("response.created", response=head)
        frames.add("response.in_progress", response=head)
        for index, item in enumerate(items):
            _item_events(frames, index, item)
        done = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        frames.add(done, response=final)
        return frames.out

    def malformed_stream(self, ask: Ask) -> list[bytes]:
        return [b'event: response.created\ndata: {"type": "response.created", "respo\n\n']


class _Frames:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.out), **fields}
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


def _item_events(frames: _Frames, index: int, item: dict[str, Any]) -> None:
    kind = item["type"]
    where = {"item_id": item["id"], "output_index": index}
    if kind == "message":
        frames.add("response.output_item.added", output_index=index, item={**item, "content": []})
        text = item["content"][0]["text"]
        part = {"type": "output_text", "text": "", "annotations": []}
        frames.add("response.content_part.added", **where, content_index=0, part=part)
        for piece in split_text(text):
            frames.add("response.output_text.delta", **where, content_index=0, delta=piece)
        frames.add("response.output_text.done", **where, content_index=0, text=text)
        frames.add("response.content_part.done", **where, content_index=0, part=item["content"][0])
    elif kind == "function_call":
        frames.add("response.output_item.added", output_index=index, item={**item, "arguments": ""})
        for piece in split_arguments(item["arguments"]):
            frames.add("response.function_call_arguments.delta", **where, delta=piece)
        frames.add("response.function_call_arguments.done", **where, arguments=item["arguments"])
    else:  # reasoning
        frames.add("response.output_item.added", output_index=index, item={**item, "summary": []})
        summary = item["summary"][0]["text"]
        where = {**where, "summary_index": 0}
        frames.add("response.reasoning_summary_text.delta", **where, delta=summary)
        frames.add("response.reasoning_summary_text.done", **where, text=summary)
    frames.add("response.output_item.done", output_index=index, item=item)
