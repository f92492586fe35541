"""The provider adapter for an upstream that speaks the Responses API (``provider:
openai-responses``: OpenAI's ``/v1/responses`` or any server with the same wire format).

A client that spoke Responses is passed through natively: its body goes upstream unchanged but
for ``model`` (the deployment's), ``stream`` (the engine's choice) and the conversation, which
modelmix keeps itself: ``previous_response_id`` is replaced by the stored items it stands for,
so any model of a route can continue any conversation. Reasoning items and every field this
gateway does not model reach the upstream as sent, and the upstream's output items reach the
client as they came (``ChatResponse.native``). A request from a Chat Completions or Messages
client is translated to a Responses body. Errors are OpenAI's.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelmix.errors import UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, HttpRequest, SSEEvent
from modelmix.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from modelmix.wire.common import loads_object
from modelmix.wire.openai_chat.upstream import ADAPTER as OPENAI_ADAPTER
from modelmix.wire.openai_responses.request import ResponsesRequest
from modelmix.wire.openai_responses.vocabulary import FINISH_REASON

__all__ = ["ADAPTER", "ResponsesAdapter", "ResponsesStreamParser"]

#: Canonical parameters the Responses API has no field for.
_NO_FIELD = ("stop", "seed", "top_k", "presence_penalty", "frequency_penalty", "logprobs", "n")
_SAME_NAME = ("temperature", "top_p", "parallel_tool_calls", "user")


# ---------------------------------------------------------------------------- canonical -> wire


def _part(part: dict[str, Any], role: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {
            "type": "output_text" if role == "assistant" else "input_text",
            "text": part["text"],
        }
    if kind == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal", "")}
    if kind == "image_url":
        image = part["image_url"]
        out = {"type": "input_image", "image_url": image["url"]}
        return {**out, "detail": image["detail"]} if image.get("detail") else out
    if kind == "file":
        return {"type": "input_file", **part["file"]}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part["input_audio"]}
    raise UnsupportedParameter("messages", f"content part {kind!r}")


def _items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            content = message.get("content")
            output = (
                content
                if isinstance(content, str)
                else "".join(p.get("text", "") for p in content or ())
            )
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": output,
                }
            )
            continue
        content = message.get("content")
        if content:
            if isinstance(content, list):
                content = [_part(p, role) for p in content]
            items.append({"type": "message", "role": role, "content": content})
        for call in message.get("tool_calls") or ():
            fn = call["function"]
            items.append(
                {
                    "type": "function_call",
                    "call_id": call["id"],
                    "name": fn["name"],
                    "arguments": fn["arguments"],
                }
            )
    return items


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "name": choice["function"]["name"]}
    return choice


def _text_format(response_format: dict[str, Any]) -> dict[str, Any]:
    if response_format["type"] == "json_schema":
        return {"type": "json_schema", **response_format["json_schema"]}
    return {"type": response_format["type"]}


def translate(request: ChatRequest) -> dict[str, Any]:
    """A Responses body for a canonical request (a client that spoke another format)."""
    body: dict[str, Any] = {"input": _items(request.messages), "store": False}
    params = request.params
    for key in _SAME_NAME:
        if key in params:
            body[key] = params[key]
    if "max_tokens" in params:
        body["max_output_tokens"] = params["max_tokens"]
    if "reasoning_effort" in params:
        body["reasoning"] = {"effort": params["reasoning_effort"]}
    if request.tools:
        body["tools"] = [{"type": "function", **t["function"]} for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.response_format is not None:
        body["text"] = {"format": _text_format(request.response_format)}
    return body


def native_body(native: ResponsesRequest) -> dict[str, Any]:
    """The client's own body, with the stored conversation in place of its reference."""
    body = dict(native.body)
    body.pop("previous_response_id", None)
    if native.history or isinstance(body.get("input"), str):
        body["input"] = [*native.history, *native.items]
    return body


# ---------------------------------------------------------------------------- wire -> canonical


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    inputs = data.get("input_tokens_details") or {}
    outputs = data.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=data.get("input_tokens") or 0,
        completion_tokens=data.get("output_tokens") or 0,
        cached_tokens=inputs.get("cached_tokens") or 0,
        cache_write_tokens=inputs.get("cache_write_tokens") or 0,
        reasoning_tokens=outputs.get("reasoning_tokens") or 0,
    )


def _finish(data: dict[str, Any], has_calls: bool) -> FinishReason:
    if data.get("status") == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        return FINISH_REASON.get(str(reason), "length")
    return "tool_calls" if has_calls else "stop"


def _failure(data: dict[str, Any]) -> UpstreamError:
    error = data.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    return UpstreamError("server", str(message or "the upstream response failed"))


def response_from(data: dict[str, Any]) -> ChatResponse:
    """A canonical answer for a Response object (its output items kept as ``native``)."""
    if data.get("status") == "failed" or data.get("error"):
        raise _failure(data)
    output = data.get("output")
    if not isinstance(output, list):
        raise UpstreamError("bad_response", "a Response without an 'output' list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in output:
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    texts.append(part.get("refusal") or "")
        elif item.get("type") == "function_call":
            calls.append(
                ToolCall(
                    item.get("call_id") or "", item.get("name") or "", item.get("arguments") or ""
                )
            )
    return ChatResponse(
        id=data.get("id") or "",
        model=data.get("model") or "",
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls,
        finish_reason=_finish(data, bool(calls)),
        usage=_usage(data.get("usage")),
        created=int(data.get("created_at") or 0),
        native=output,
    )


class ResponsesStreamParser:
    """Responses SSE events -> canonical deltas (text, function calls, usage, the end).

    Finished output items with no canonical form (reasoning) ride on the next delta as
    ``StreamDelta.native``, so a Responses client gets them in order."""

    __slots__ = ("_calls", "_done", "_items")

    def __init__(self) -> None:
        self._done = False
        self._calls: dict[int, int] = {}  # output_index -> canonical tool-call index
        self._items: list[dict[str, Any]] = []

    def finished(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        deltas = self._feed(loads_object(event.data))
        if self._items and deltas:
            deltas[0].native, self._items = self._items, []
        return deltas

    def _feed(self, data: dict[str, Any]) -> list[StreamDelta]:
        kind = data.get("type")
        if kind == "response.output_item.done":
            item = data.get("item") or {}
            if item.get("type") not in ("message", "function_call"):
                self._items.append(item)
            return []
        if kind == "response.output_text.delta":
            return [StreamDelta(content=data.get("delta") or "")]
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(data.get("output_index", -1))
            if index is None:
                return []
            return [
                StreamDelta(tool_calls=[ToolCallDelta(index, arguments=data.get("delta") or "")])
            ]
        if kind == "response.output_item.added":
            item = data.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self._calls[data.get("output_index", len(self._calls))] = len(self._calls)
            call = ToolCallDelta(index, id=item.get("call_id"), name=item.get("name"))
            return [StreamDelta(tool_calls=[call])]
        if kind == "response.created":
            response = data.get("response") or {}
            return [StreamDelta(id=response.get("id"), model=response.get("model"))]
        if kind in ("response.completed", "response.incomplete"):
            self._done = True
            response = data.get("response") or {}
            finish = _finish(response, bool(self._calls))
            return [StreamDelta(finish_reason=finish, usage=_usage(response.get("usage")))]
        if kind in ("error", "response.failed"):
            raise _failure(data.get("response") or {"error": data})
        return []


class ResponsesAdapter:
    kind = "openai-responses"

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        """Sampling parameters the Responses API has no field for cannot be honoured."""
        for key in _NO_FIELD:
            if key in request.params and not (key == "logprobs" and not request.params[key]):
                raise UnsupportedParameter(key, "the Responses API has no such parameter")

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        native = request.responses
        if isinstance(native, ResponsesRequest):
            body = native_body(native)
        else:
            self.check(request, deployment)
            body = translate(request)
        body["model"] = deployment.upstream_model
        body["stream"] = request.stream
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        headers.update(deployment.headers)
        return HttpRequest(
            method="POST",
            url=f"{deployment.base_url}/responses",
            headers=headers,
            body=orjson.dumps(body),
        )

    def parse_response(self, body: bytes) -> ChatResponse:
        try:
            return response_from(loads_object(body))
        except (AttributeError, TypeError) as exc:
            raise UpstreamError("bad_response", f"unexpected response shape: {exc!r}") from None

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return OPENAI_ADAPTER.parse_error(status, body, headers)

    def stream_parser(self) -> ResponsesStreamParser:
        return ResponsesStreamParser()


ADAPTER = ResponsesAdapter()
