"""Anthropic Messages adapter.

Translates the canonical (OpenAI-shaped) request faithfully: system/developer messages go to
``system``, tool calls become ``tool_use`` blocks and tool messages ``tool_result`` blocks in a
user turn, consecutive same-role turns are merged (Anthropic requires alternation). What the
Messages API cannot do (``n>1``, logprobs, seed, penalties, JSON mode, reasoning effort) raises
``UnsupportedParameter`` instead of being dropped. No-op values (``n=1``, a penalty of 0,
``logprobs=false``) are accepted: they ask for nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelmix.errors import UnsupportedParameter, UpstreamError, UpstreamErrorKind
from modelmix.providers.base import (
    Deployment,
    HttpRequest,
    SSEEvent,
    check_base64_data_url,
    has_turn,
)
from modelmix.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from modelmix.wire.anthropic_messages.vocabulary import ERROR_KIND as _ERROR_KINDS
from modelmix.wire.anthropic_messages.vocabulary import FINISH_REASON as _FINISH
from modelmix.wire.common import (
    clip,
    error_from_status,
    loads_object,
    raw_text,
    try_loads,
)

__all__ = ["ADAPTER", "DEFAULT_MAX_TOKENS", "AnthropicAdapter", "AnthropicStreamParser"]

API_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; used when the client set none.
DEFAULT_MAX_TOKENS = 4096

_NOOP_REASONING = frozenset({"none", "minimal"})
_NO_TURN = "Anthropic needs a user or assistant message besides the system prompt"


def _media_source(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or ";base64" not in header:
            raise UnsupportedParameter("messages", "image data URL must be base64-encoded")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Canonical content (string or parts) -> Anthropic content blocks (no empty text)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            text = part.get("text") or ""
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": text}
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise UnsupportedParameter("messages", "image_url part without a url")
            block = {"type": "image", "source": _media_source(url)}
        else:
            raise UnsupportedParameter("messages", f"content part type {kind!r}")
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _system_text(content: Any) -> list[dict[str, Any]]:
    blocks = _blocks(content)
    for block in blocks:
        if block["type"] != "text":
            raise UnsupportedParameter("messages", "system messages may only hold text")
    return blocks


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    arguments = fn.get("arguments") or "{}"
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UnsupportedParameter("messages", "tool call arguments are not a JSON object")
    return {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": value}


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        block["content"] = content
    elif content:
        block["content"] = _blocks(content)
    return block


def _translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_system_text(message.get("content")))
            continue
        if role == "user":
            blocks = _blocks(message.get("content"))
            turn = "user"
        elif role == "tool":
            blocks = [_tool_result(message)]
            turn = "user"
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            blocks.extend(_tool_use(c) for c in message.get("tool_calls") or ())
            turn = "assistant"
        else:
            raise UnsupportedParameter("messages", f"message role {role!r}")
        if not blocks:
            continue
        if out and out[-1]["role"] == turn:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": turn, "content": blocks})
    return system, out


def _tool_choice(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if value == "auto":
        return {"type": "auto"}
    if value == "required":
        return {"type": "any"}
    if value == "none":
        return {"type": "none"}
    if isinstance(value, dict):
        name = (value.get("function") or {}).get("name") or value.get("name")
        if name:
            return {"type": "tool", "name": name}
    raise UnsupportedParameter("tool_choice", f"unknown tool_choice {value!r}")


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            raise UnsupportedParameter("tools", f"tool type {tool.get('type')!r}")
        fn = tool.get("function") or {}
        spec: dict[str, Any] = {
            "name": fn.get("name"),
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        out.append(spec)
    return out


_USAGE_KEYS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


def _raw_usage(data: Any, into: dict[str, int]) -> None:
    """Copy the usage counters present in ``data`` (later events update earlier ones)."""
    if isinstance(data, dict):
        for key in _USAGE_KEYS:
            value = data.get(key)
            if isinstance(value, int):
                into[key] = value


def _usage(raw: dict[str, int]) -> Usage:
    reads = raw.get("cache_read_input_tokens", 0)
    writes = raw.get("cache_creation_input_tokens", 0)
    return Usage(
        prompt_tokens=raw.get("input_tokens", 0) + reads + writes,
        completion_tokens=raw.get("output_tokens", 0),
        cached_tokens=reads,
        cache_write_tokens=writes,
    )


def _error(error: Any, default: UpstreamErrorKind) -> UpstreamError:
    if isinstance(error, dict):
        kind = _ERROR_KINDS.get(error.get("type") or "", default)
        message = error.get("message")
        return UpstreamError(kind, clip(message) if isinstance(message, str) else str(error))
    return UpstreamError(default, clip(str(error)))


class AnthropicStreamParser:
    __slots__ = ("_args_seen", "_blocks", "_done", "_usage")

    def __init__(self) -> None:
        self._done = False
        self._usage: dict[str, int] = {}
        #: content block index -> tool-call ordinal, for tool_use blocks.
        self._blocks: dict[int, int] = {}
        self._args_seen: set[int] = set()

    def finished(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        data = loads_object(event.data)
        kind = data.get("type") or event.event
        try:
            if kind == "content_block_delta":
                delta = data["delta"]
                dtype = delta.get("type")
                if dtype == "text_delta":
                    text = delta.get("text")
                    return [StreamDelta(content=text)] if text else []
                if dtype == "input_json_delta":
                    ordinal = self._blocks.get(data["index"])
                    partial = delta.get("partial_json") or ""
                    if ordinal is None or not partial:
                        return []
                    self._args_seen.add(ordinal)
                    return [
                        StreamDelta(tool_calls=[ToolCallDelta(index=ordinal, arguments=partial)])
                    ]
                return []  # thinking_delta, signature_delta, citations_delta
            if kind == "content_block_start":
                block = data["content_block"]
                if block.get("type") == "tool_use":
                    ordinal = len(self._blocks)
                    self._blocks[data["index"]] = ordinal
                    call = ToolCallDelta(index=ordinal, id=block.get("id"), name=block.get("name"))
                    return [StreamDelta(tool_calls=[call])]
                if block.get("type") == "text" and block.get("text"):
                    return [StreamDelta(content=block["text"])]
                return []
            if kind == "content_block_stop":
                ordinal = self._blocks.get(data.get("index", -1))
                if ordinal is not None and ordinal not in self._args_seen:
                    # A tool without arguments streams no JSON at all; canonical wants "{}".
                    self._args_seen.add(ordinal)
                    return [StreamDelta(tool_calls=[ToolCallDelta(index=ordinal, arguments="{}")])]
                return []
            if kind == "message_start":
                message = data["message"]
                _raw_usage(message.get("usage"), self._usage)
                return [StreamDelta(id=message.get("id"), model=message.get("model"))]
            if kind == "message_delta":
                _raw_usage(data.get("usage"), self._usage)
                reason = (data.get("delta") or {}).get("stop_reason")
                usage = _usage(self._usage)
                finish = _FINISH.get(reason, "stop") if reason else None
                return [StreamDelta(finish_reason=finish, usage=usage)]
            if kind == "message_stop":
                self._done = True
                return []
            if kind == "error":
                raise _error(data.get("error"), "server")
            return []  # ping, unknown future events
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("bad_response", f"unexpected stream event: {exc!r}") from None


def _check_image(image: Any) -> None:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UnsupportedParameter("messages", "image_url part without a url")
    if url.startswith("data:"):
        check_base64_data_url(url)


def _check_content(messages: list[dict[str, Any]]) -> None:
    """What ``_translate_messages`` would refuse, found without translating: a string content
    (the usual case) costs one isinstance check."""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        system = message.get("role") in ("system", "developer")
        for part in content:
            kind = part.get("type")
            if kind == "text":
                continue
            if system:
                raise UnsupportedParameter("messages", "system messages may only hold text")
            if kind != "image_url":
                raise UnsupportedParameter("messages", f"Anthropic cannot take {kind!r} parts")
            _check_image(part.get("image_url"))
    if not has_turn(messages):
        raise UnsupportedParameter("messages", _NO_TURN)


def _check_params(request: ChatRequest) -> None:
    params = request.params
    if (params.get("n") or 1) > 1:
        raise UnsupportedParameter("n", "Anthropic returns a single choice")
    if params.get("logprobs"):
        raise UnsupportedParameter("logprobs", "Anthropic does not return logprobs")
    if params.get("top_logprobs"):
        raise UnsupportedParameter("top_logprobs", "Anthropic does not return logprobs")
    if params.get("seed") is not None:
        raise UnsupportedParameter("seed", "Anthropic has no seed")
    for name in ("presence_penalty", "frequency_penalty"):
        if params.get(name):
            raise UnsupportedParameter(name, "Anthropic has no penalties")
    effort = params.get("reasoning_effort")
    if effort is not None and effort not in _NOOP_REASONING:
        raise UnsupportedParameter("reasoning_effort", "not mapped to Anthropic thinking")
    fmt = request.response_format
    if fmt is not None and fmt.get("type") in ("json_object", "json_schema"):
        raise UnsupportedParameter("response_format", "Anthropic has no JSON mode")


class AnthropicAdapter:
    kind = "anthropic"

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        _check_params(request)
        _check_content(request.messages)

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        _check_params(request)  # the content is checked as it is translated
        params = request.params
        system, messages = _translate_messages(request.messages)
        if not messages:
            raise UnsupportedParameter("messages", _NO_TURN)
        max_tokens = params.get("max_tokens") or DEFAULT_MAX_TOKENS
        cap = deployment.capabilities.max_output_tokens
        if cap and "max_tokens" not in params:
            max_tokens = min(max_tokens, cap)
        body: dict[str, Any] = {
            "model": deployment.upstream_model,
            "messages": messages,
            "max_tokens": max_tokens,
        }
        if system:
            has_cache = any("cache_control" in b for b in system)
            if len(system) == 1 and not has_cache:
                body["system"] = system[0]["text"]
            else:
                body["system"] = system
        for name in ("temperature", "top_p", "top_k"):
            if params.get(name) is not None:
                body[name] = params[name]
        if params.get("stop"):
            stop = params["stop"]
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if params.get("user"):
            body["metadata"] = {"user_id": params["user"]}
        if request.tools:
            body["tools"] = _tools(request.tools)
            choice = _tool_choice(request.tool_choice)
            if params.get("parallel_tool_calls") is False:
                if choice is None:
                    choice = {"type": "auto"}
                if choice["type"] != "none":
                    choice["disable_parallel_tool_use"] = True
            if choice is not None:
                body["tool_choice"] = choice
        if request.stream:
            body["stream"] = True
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": API_VERSION,
        }
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        if deployment.headers:
            headers.update(deployment.headers)
        return HttpRequest(
            method="POST",
            url=f"{deployment.base_url}/messages",
            headers=headers,
            body=orjson.dumps(body),
        )

    def parse_response(self, body: bytes) -> ChatResponse:
        data = loads_object(body)
        if data.get("type") == "error":
            raise _error(data.get("error"), "server")
        try:
            texts: list[str] = []
            calls: list[ToolCall] = []
            for block in data["content"]:
                btype = block.get("type")
                if btype == "text":
                    texts.append(block.get("text") or "")
                elif btype == "tool_use":
                    calls.append(
                        ToolCall(
                            id=block["id"],
                            name=block["name"],
                            arguments=orjson.dumps(block.get("input") or {}).decode(),
                        )
                    )
            raw: dict[str, int] = {}
            _raw_usage(data.get("usage"), raw)
            reason = data.get("stop_reason")
            finish: FinishReason = _FINISH.get(reason, "stop") if reason else "stop"
            return ChatResponse(
                id=data.get("id") or "",
                model=data.get("model") or "",
                content="".join(texts) if texts else None,
                tool_calls=calls,
                finish_reason=finish,
                usage=_usage(raw),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("bad_response", f"unexpected response shape: {exc!r}") from None

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        data = try_loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind: UpstreamErrorKind | None = None
            if error.get("type") == "overloaded_error":
                kind = "overloaded"
            return error_from_status(status, clip(error["message"]), headers, kind)
        return error_from_status(status, raw_text(body), headers)

    def stream_parser(self) -> AnthropicStreamParser:
        return AnthropicStreamParser()


ADAPTER = AnthropicAdapter()
