"""OpenAI Chat Completions adapter.

Serves OpenAI itself and every server speaking its dialect (OpenRouter, Groq, Together,
DeepSeek, Mistral, vLLM, Ollama, llama.cpp, LM Studio). The canonical types are already
OpenAI-shaped, so requests pass through almost untouched; the work is in usage mapping and in
the stream (``[DONE]``, a final usage chunk with no choices, mid-stream ``{"error": ...}``).

The HTTP-status classification every adapter shares (``error_from_status``,
``retry_after_from_headers``, ``clip``, ``loads_object``) lives in ``modelmix.wire.common``.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelmix.errors import UnsupportedParameter, UpstreamError, UpstreamErrorKind
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
from modelmix.wire.common import (
    clip,
    error_from_status,
    kind_for_status,
    loads_object,
    raw_text,
    try_loads,
)
from modelmix.wire.openai_chat.vocabulary import CONTENT_FILTER_CODES as _CONTENT_FILTER_CODES
from modelmix.wire.openai_chat.vocabulary import FINISH_REASON as _FINISH

__all__ = [
    "ADAPTER",
    "OpenAIAdapter",
    "OpenAIStreamParser",
]

# ---------------------------------------------------------------------------------------------
# OpenAI dialect.


def _finish(value: Any) -> FinishReason | None:
    if value is None:
        return None
    return _FINISH.get(value, "stop")


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    usage = Usage(
        prompt_tokens=data.get("prompt_tokens") or 0,
        completion_tokens=data.get("completion_tokens") or 0,
    )
    details = data.get("prompt_tokens_details")
    if isinstance(details, dict):
        usage.cached_tokens = details.get("cached_tokens") or 0
        # OpenRouter reports prompt-cache writes (Anthropic, Gemini models) here too
        usage.cache_write_tokens = details.get("cache_write_tokens") or 0
    elif isinstance(data.get("prompt_cache_hit_tokens"), int):  # DeepSeek
        usage.cached_tokens = data["prompt_cache_hit_tokens"]
    details = data.get("completion_tokens_details")
    if isinstance(details, dict):
        usage.reasoning_tokens = details.get("reasoning_tokens") or 0
    return usage


def _error_kind(error: dict[str, Any], default: UpstreamErrorKind) -> UpstreamErrorKind:
    code = error.get("code")
    if code in _CONTENT_FILTER_CODES or error.get("type") in _CONTENT_FILTER_CODES:
        return "content_filter"
    if isinstance(code, int) and 400 <= code < 600:  # OpenRouter puts the HTTP status here
        return kind_for_status(code)
    if isinstance(code, str) and code.isdigit():
        return kind_for_status(int(code))
    return default


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return clip(message)
        return clip(orjson.dumps(error).decode())
    return clip(str(error))


def _embedded_error(error: Any, default: UpstreamErrorKind) -> UpstreamError:
    """An ``{"error": ...}`` found in a 2xx body or in a stream chunk."""
    kind = _error_kind(error, default) if isinstance(error, dict) else default
    status = error.get("code") if isinstance(error, dict) else None
    return UpstreamError(
        kind, _error_message(error), status=status if isinstance(status, int) else None
    )


class OpenAIStreamParser:
    __slots__ = ("_done", "_finish", "_first", "_usage")

    def __init__(self) -> None:
        self._done = False
        self._first = True
        self._finish = False
        self._usage = False

    def finished(self) -> bool:
        # [DONE] is the rule; a stream that already delivered its finish_reason and its
        # usage has nothing left to say even if the server forgets [DONE].
        return self._done or (self._finish and self._usage)

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        data = event.data
        if data[:6] == "[DONE]":
            self._done = True
            return []
        chunk = loads_object(data)
        if chunk.get("error"):
            raise _embedded_error(chunk["error"], "server")
        delta = StreamDelta()
        useful = False
        if self._first:
            self._first = False
            delta.id = chunk.get("id")
            delta.model = chunk.get("model")
            useful = True
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            d = choice.get("delta") or {}
            content = d.get("content")
            if content:
                delta.content = content
                useful = True
            elif d.get("refusal"):
                delta.content = d["refusal"]
                useful = True
            calls = d.get("tool_calls")
            if calls:
                delta.tool_calls = [_tool_call_delta(c, i) for i, c in enumerate(calls)]
                useful = True
            finish = choice.get("finish_reason")
            if finish is not None:
                delta.finish_reason = _FINISH.get(finish, "stop")
                self._finish = True
                useful = True
            logprobs = choice.get("logprobs")
            if logprobs:
                delta.logprobs = logprobs
                useful = True
        usage_data = chunk.get("usage")
        if usage_data is None:
            x_groq = chunk.get("x_groq")
            if isinstance(x_groq, dict):
                usage_data = x_groq.get("usage")
        if usage_data is not None:
            usage = _usage(usage_data)
            if usage is not None:
                delta.usage = usage
                self._usage = True
                useful = True
        return [delta] if useful else []


def _tool_call_delta(call: dict[str, Any], position: int) -> ToolCallDelta:
    fn = call.get("function") or {}
    index = call.get("index")
    return ToolCallDelta(
        index=index if isinstance(index, int) else position,
        id=call.get("id") or None,
        name=fn.get("name") or None,
        arguments=fn.get("arguments") or "",
    )


#: OpenAI's own API, which refuses parameters other OpenAI-compatible servers take.
OPENAI_API_URL = "https://api.openai.com/"


def _check_params(params: dict[str, Any], deployment: Deployment) -> None:
    if "top_k" in params and deployment.base_url.startswith(OPENAI_API_URL):
        raise UnsupportedParameter("top_k", "OpenAI's API has no top_k")


class OpenAIAdapter:
    kind = "openai"

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        """Every canonical field but ``top_k`` is native here (OpenAI-compatible servers take
        ``top_k``, OpenAI's API does not); the upstream judges message content."""
        _check_params(request.params, deployment)

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        body: dict[str, Any] = {"model": deployment.upstream_model, "messages": request.messages}
        params = request.params
        if params:
            _check_params(params, deployment)
            body.update(params)
            # As the client named it; OpenAI's API gets the name all its models take.
            if "max_tokens" in params and (
                request.max_tokens_name == "max_completion_tokens"
                or deployment.base_url.startswith(OPENAI_API_URL)
            ):
                body["max_completion_tokens"] = body.pop("max_tokens")
        if request.tools:
            body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        if deployment.headers:
            headers.update(deployment.headers)
        return HttpRequest(
            method="POST",
            url=f"{deployment.base_url}/chat/completions",
            headers=headers,
            body=orjson.dumps(body),
        )

    def parse_response(self, body: bytes) -> ChatResponse:
        data = loads_object(body)
        if data.get("error"):
            raise _embedded_error(data["error"], "server")
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            calls = [
                ToolCall(
                    id=c.get("id") or f"call_{i}",
                    name=c["function"]["name"],
                    arguments=c["function"].get("arguments") or "",
                )
                for i, c in enumerate(message.get("tool_calls") or ())
            ]
            content = message.get("content")
            if content is None and message.get("refusal"):
                content = message["refusal"]
            return ChatResponse(
                id=data.get("id") or "",
                model=data.get("model") or "",
                content=content,
                tool_calls=calls,
                finish_reason=_finish(choice.get("finish_reason"))
                or ("tool_calls" if calls else "stop"),
                usage=_usage(data.get("usage")) or Usage(),
                created=data.get("created") or 0,
                logprobs=choice.get("logprobs"),
                system_fingerprint=data.get("system_fingerprint"),
            )
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError("bad_response", f"unexpected response shape: {exc!r}") from None

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        data = try_loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            kind = kind_for_status(status)
            if error.get("code") in _CONTENT_FILTER_CODES:
                kind = "content_filter"
            return error_from_status(status, _error_message(error), headers, kind)
        if isinstance(error, str) and error:  # Ollama, some proxies: {"error": "text"}
            return error_from_status(status, clip(error), headers)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return error_from_status(status, clip(data["message"]), headers)
        return error_from_status(status, raw_text(body), headers)

    def stream_parser(self) -> OpenAIStreamParser:
        return OpenAIStreamParser()


ADAPTER = OpenAIAdapter()
