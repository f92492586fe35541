"""Google Gemini adapter (``generateContent`` / ``streamGenerateContent?alt=sse``).

Canonical messages become ``systemInstruction`` plus ``contents`` with roles ``user`` and
``model``; tool calls become ``functionCall`` parts and tool results ``functionResponse`` parts,
which Gemini keys by function *name* (found from the earlier assistant tool call with the same
id). Tool schemas are reduced to the OpenAPI subset Gemini accepts. Gemini has no tool-call
ids, so ids are made up (``call_<random>_<n>``).

``reasoning_effort`` maps to ``thinkingConfig.thinkingBudget`` the way Google's own OpenAI
compatibility layer does (low 1024, medium 8192, high 24576; none/minimal 0).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import orjson

from modelmix.errors import UnsupportedParameter, UpstreamError
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
from modelmix.wire.common import (
    clip,
    error_from_status,
    kind_for_status,
    loads_object,
    raw_text,
    retry_after_from_headers,
    try_loads,
)
from modelmix.wire.gemini.vocabulary import ERROR_KIND as _STATUS_KINDS
from modelmix.wire.gemini.vocabulary import FINISH_REASON as _FINISH

__all__ = ["ADAPTER", "GeminiAdapter", "GeminiStreamParser", "clean_schema"]


_THINKING_BUDGET = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}

#: JSON-schema keys Gemini's Schema object understands; everything else is dropped.
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
        "default",
        "example",
    }
)


def clean_schema(schema: Any) -> Any:
    """A JSON schema reduced to what Gemini accepts (drops additionalProperties, $schema...)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key not in _SCHEMA_KEYS:
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = clean_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [clean_schema(sub) for sub in value]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        else:
            out[key] = value
    return out


_NO_TURN = "Gemini needs a user or assistant message besides the system prompt"
_TOOL_TEXT_ONLY = "Gemini tool results may only hold text"


def _check_image(image: Any) -> None:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise UnsupportedParameter("messages", "image_url part without a url")
    if not url.startswith("data:"):
        raise UnsupportedParameter("messages", "Gemini needs images inline (data: URLs)")
    check_base64_data_url(url)


def _check_content(messages: list[dict[str, Any]]) -> None:
    """What ``_translate_messages`` would refuse, found without translating: a string content
    (the usual case) costs one isinstance check."""
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        tool = message.get("role") == "tool"
        for part in content:
            kind = part.get("type")
            if kind == "text":
                continue
            if tool:
                raise UnsupportedParameter("messages", _TOOL_TEXT_ONLY)
            if kind != "image_url":
                raise UnsupportedParameter("messages", f"Gemini cannot take {kind!r} parts")
            _check_image(part.get("image_url"))
    if not has_turn(messages):
        raise UnsupportedParameter("messages", _NO_TURN)


def _inline(url: str) -> dict[str, Any]:
    _check_image(url)
    header, _, data = url.partition(",")
    mime = header[5:].split(";", 1)[0] or "image/png"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise UnsupportedParameter("messages", "image_url part without a url")
            parts.append(_inline(url))
        else:
            raise UnsupportedParameter("messages", f"content part type {kind!r}")
    return parts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not content:
        return ""
    return "".join(p.get("text") or "" for p in content if p.get("type") == "text")


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not name:
        raise UnsupportedParameter("messages", f"tool result {call_id!r} has no matching call")
    content = message.get("content")
    if isinstance(content, list) and any(p.get("type") != "text" for p in content):
        raise UnsupportedParameter("messages", _TOOL_TEXT_ONLY)
    text = _text_of(content)
    try:
        value = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        value = None
    response = value if isinstance(value, dict) else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _function_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    arguments = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise UnsupportedParameter("messages", "tool call arguments are not a JSON object")
    return {"functionCall": {"name": fn.get("name"), "args": args}}


def _translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "user":
            parts = _parts(message.get("content"))
            turn = "user"
        elif role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                if call.get("id") and fn.get("name"):
                    names[call["id"]] = fn["name"]
                parts.append(_function_call(call))
            turn = "model"
        elif role == "tool":
            parts = [_function_response(message, names)]
            turn = "user"
        else:
            raise UnsupportedParameter("messages", f"message role {role!r}")
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    return system, contents


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            raise UnsupportedParameter("tools", f"tool type {tool.get('type')!r}")
        fn = tool.get("function") or {}
        decl: dict[str, Any] = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = fn.get("parameters")
        if isinstance(params, dict) and params.get("properties"):
            decl["parameters"] = clean_schema(params)
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


def _tool_config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if value == "auto":
        config: dict[str, Any] = {"mode": "AUTO"}
    elif value == "required":
        config = {"mode": "ANY"}
    elif value == "none":
        config = {"mode": "NONE"}
    elif isinstance(value, dict) and ((value.get("function") or {}).get("name")):
        config = {"mode": "ANY", "allowedFunctionNames": [value["function"]["name"]]}
    else:
        raise UnsupportedParameter("tool_choice", f"unknown tool_choice {value!r}")
    return {"functionCallingConfig": config}


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    params = request.params
    config: dict[str, Any] = {}
    for src, dst in (
        ("max_tokens", "maxOutputTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
        ("top_logprobs", "logprobs"),
    ):
        value = params.get(src)
        if value is not None:
            config[dst] = value
    if params.get("stop"):
        stop = params["stop"]
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("logprobs"):
        config["responseLogprobs"] = True
    effort = params.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort]}
    fmt = request.response_format
    if fmt is not None:
        ftype = fmt.get("type")
        if ftype == "json_object":
            config["responseMimeType"] = "application/json"
        elif ftype == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema:
                config["responseSchema"] = clean_schema(schema)
    return config


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = meta.get("thoughtsTokenCount") or 0
    return Usage(
        prompt_tokens=(meta.get("promptTokenCount") or 0)
        + (meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=meta.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def _error(error: Any, status: int | None) -> UpstreamError:
    if not isinstance(error, dict):
        return UpstreamError("server", clip(str(error)), status=status)
    code = error.get("code")
    if status is None and isinstance(code, int):
        status = code
    kind = _STATUS_KINDS.get(error.get("status") or "")
    if kind is None:
        kind = kind_for_status(status) if status else "server"
    retry_after: float | None = None
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        if detail.get("reason") == "API_KEY_INVALID":
            kind = "auth"
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                retry_after = float(delay[:-1])
    message = error.get("message")
    text = clip(message) if isinstance(message, str) else clip(str(error))
    return UpstreamError(kind, text, status=status, retry_after=retry_after)


def _token_logprob(candidate: Any) -> dict[str, Any]:
    token = candidate.get("token") or ""
    return {
        "token": token,
        # proto3 JSON leaves a zero out: a token the model was certain of
        "logprob": candidate.get("logProbability") or 0.0,
        "bytes": list(token.encode()),
    }


def _logprobs(result: Any) -> dict[str, Any] | None:
    """Gemini's ``logprobsResult`` in OpenAI's ``logprobs`` shape: one entry per chosen token,
    with that step's top candidates as ``top_logprobs``."""
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or ()
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or ()):
        top = tops[i].get("candidates") if i < len(tops) else None
        entry = _token_logprob(chosen)
        entry["top_logprobs"] = [_token_logprob(c) for c in top or ()]
        content.append(entry)
    return {"content": content, "refusal": None}


def _call_prefix() -> str:
    """Gemini has no call ids; ours are ``call_<random>_<n>``, unique across turns (Anthropic
    rejects a conversation that reuses a tool_use id if the request fails over there)."""
    return f"call_{secrets.token_hex(4)}_"


def _finish(reason: str, had_calls: bool) -> FinishReason:
    finish = _FINISH.get(reason, "stop")
    if finish == "stop" and had_calls:
        return "tool_calls"
    return finish


class GeminiStreamParser:
    __slots__ = ("_calls", "_done", "_first", "_prefix", "_usage")

    def __init__(self) -> None:
        self._prefix = _call_prefix()
        self._usage: Any = None
        self._done = False
        self._first = True
        self._calls = 0

    def finished(self) -> bool:
        return self._done

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        chunk = loads_object(event.data)
        if "error" in chunk:
            raise _error(chunk["error"], None)
        delta = StreamDelta()
        useful = False
        if "usageMetadata" in chunk:
            self._usage = chunk["usageMetadata"]
        if self._first:
            self._first = False
            delta.id = chunk.get("responseId")
            delta.model = chunk.get("modelVersion")
            useful = True
        try:
            candidates = chunk.get("candidates")
            reason: str | None = None
            if candidates:
                candidate = candidates[0]
                texts: list[str] = []
                calls: list[ToolCallDelta] = []
                for part in (candidate.get("content") or {}).get("parts") or ():
                    if "text" in part:
                        if not part.get("thought"):
                            texts.append(part["text"])
                    elif "functionCall" in part:
                        fc = part["functionCall"]
                        calls.append(
                            ToolCallDelta(
                                index=self._calls,
                                id=fc.get("id") or f"{self._prefix}{self._calls}",
                                name=fc["name"],
                                arguments=orjson.dumps(fc.get("args") or {}).decode(),
                            )
                        )
                        self._calls += 1
                text = "".join(texts)
                if text:
                    delta.content = text
                    useful = True
                if calls:
                    delta.tool_calls = calls
                    useful = True
                reason = candidate.get("finishReason")
                if candidate.get("logprobsResult"):
                    delta.logprobs = _logprobs(candidate["logprobsResult"])
            else:
                block = (chunk.get("promptFeedback") or {}).get("blockReason")
                if block:
                    reason = "SAFETY"
            if reason:
                delta.finish_reason = _finish(reason, self._calls > 0)
                delta.usage = _usage(self._usage)
                self._done = True
                useful = True
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("bad_response", f"unexpected stream chunk: {exc!r}") from None
        return [delta] if useful else []


def _check_params(request: ChatRequest) -> None:
    params = request.params
    if params.get("parallel_tool_calls") is False and request.tools:
        raise UnsupportedParameter(
            "parallel_tool_calls", "Gemini cannot forbid parallel function calls"
        )
    effort = params.get("reasoning_effort")
    if effort is not None and effort not in _THINKING_BUDGET:
        raise UnsupportedParameter("reasoning_effort", f"unknown effort {effort!r}")


class GeminiAdapter:
    kind = "gemini"

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        _check_params(request)
        _check_content(request.messages)

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        _check_params(request)  # the content is checked as it is translated
        system, contents = _translate_messages(request.messages)
        if not contents:
            raise UnsupportedParameter("messages", _NO_TURN)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if request.tools:
            body["tools"] = _tools(request.tools)
            tool_config = _tool_config(request.tool_choice)
            if tool_config is not None:
                body["toolConfig"] = tool_config
        config = _generation_config(request)
        if config:
            body["generationConfig"] = config
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        if deployment.headers:
            headers.update(deployment.headers)
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return HttpRequest(
            method="POST",
            url=f"{deployment.base_url}/models/{deployment.upstream_model}:{method}",
            headers=headers,
            body=orjson.dumps(body),
        )

    def parse_response(self, body: bytes) -> ChatResponse:
        data = loads_object(body)
        if "error" in data:
            raise _error(data["error"], None)
        try:
            texts: list[str] = []
            calls: list[ToolCall] = []
            candidates = data.get("candidates")
            logprobs: Any = None
            prefix = _call_prefix()
            if candidates:
                candidate = candidates[0]
                for part in (candidate.get("content") or {}).get("parts") or ():
                    if "text" in part:
                        if not part.get("thought"):
                            texts.append(part["text"])
                    elif "functionCall" in part:
                        fc = part["functionCall"]
                        calls.append(
                            ToolCall(
                                id=fc.get("id") or f"{prefix}{len(calls)}",
                                name=fc["name"],
                                arguments=orjson.dumps(fc.get("args") or {}).decode(),
                            )
                        )
                finish = _finish(candidate.get("finishReason") or "STOP", bool(calls))
                logprobs = _logprobs(candidate.get("logprobsResult"))
            elif (data.get("promptFeedback") or {}).get("blockReason"):
                finish = "content_filter"
            else:
                raise UpstreamError("bad_response", "Gemini response without candidates")
            return ChatResponse(
                id=data.get("responseId") or "",
                model=data.get("modelVersion") or "",
                content="".join(texts) if texts else None,
                tool_calls=calls,
                finish_reason=finish,
                usage=_usage(data.get("usageMetadata")) or Usage(),
                logprobs=logprobs,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError("bad_response", f"unexpected response shape: {exc!r}") from None

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        data = try_loads(body)
        # Errors come as an object, or (streamGenerateContent without alt=sse) a 1-list of one.
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            parsed = _error(error, status)
            kind = "auth" if parsed.kind == "auth" else kind_for_status(status)
            retry_after = retry_after_from_headers(headers)
            if retry_after is None:
                retry_after = parsed.retry_after
            return UpstreamError(kind, parsed.message, status=status, retry_after=retry_after)
        return error_from_status(status, raw_text(body), headers)

    def stream_parser(self) -> GeminiStreamParser:
        return GeminiStreamParser()


ADAPTER = GeminiAdapter()
