"""The Anthropic Messages wire format, client side: what the gateway accepts and returns.

``parse_messages_request`` validates a ``/v1/messages`` body the way Anthropic does (same
``messages.0.content.1.type``-style paths, same wording where it matters) and translates it to
the canonical, OpenAI-shaped ``ChatRequest``; ``render_message_response``,
``MessageStreamRenderer`` and ``render_error`` turn canonical results back into the bytes
Anthropic would send. Pure functions, hot path: dicts and orjson only.

Translation decisions:

* ``system`` (string or text blocks) becomes a leading ``system`` message (string, or text
  parts when given as several blocks).
* A message whose content is a single text block becomes a string; several text/image blocks
  become OpenAI parts (images as ``image_url``, base64 sources as ``data:`` URLs).
* ``tool_use`` blocks become the assistant's ``tool_calls`` (``arguments`` = compact JSON of
  ``input``); ``tool_result`` blocks become ``tool`` messages, in order, before the rest of the
  user message. ``tool_result`` content (string or text blocks, joined with newlines) is a
  string; ``is_error: true`` prefixes it with ``"Error: "``. Both tool pairing rules Anthropic
  enforces (each result answers a ``tool_use`` of the previous message; each ``tool_use`` is
  answered in the next message) are enforced here too.
* ``cache_control`` (top level, blocks, tools), ``service_tier``, ``inference_geo``, ``speed``,
  ``diagnostics``, ``workspace_id``, ``user_profile_id`` are accepted and ignored: they change
  cost, latency or bookkeeping, not the answer.
* ``output_config.format`` (JSON schema) becomes ``response_format`` json_schema (strict, named
  ``output``); ``output_config.effort`` becomes ``reasoning_effort`` (``max`` is rejected).
* Rejected with a clear ``invalid_request``: ``thinking`` other than ``{"type": "disabled"}``,
  document / thinking / redacted_thinking / server-tool blocks, images inside tool results,
  file image sources, server tools (any tool with a ``type`` other than ``custom``), a final
  assistant message (prefill: no faithful translation to other providers), ``container``,
  ``mcp_servers``, ``context_management`` and any unknown key ("X: Extra inputs are not
  permitted", as Anthropic says).
* Response ``tool_use.input`` is the parsed ``arguments``; empty arguments give ``{}``; if the
  model produced arguments that are not a JSON object, ``input`` is
  ``{"_raw_arguments": "<the text>"}`` so nothing is lost. (Streams forward argument text as
  ``input_json_delta`` unchanged.)
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.types import ChatRequest, ChatResponse, FinishReason, StreamDelta, Usage
from modelmix.wire.anthropic_messages.vocabulary import STOP_REASON as _STOP_REASONS
from modelmix.wire.anthropic_messages.vocabulary import TYPE_FOR_KIND as _ERROR_TYPES

__all__ = [
    "MessageStreamRenderer",
    "parse_messages_request",
    "render_error",
    "render_message_response",
]

_IGNORED_KEYS = frozenset(
    {
        "cache_control",
        "service_tier",
        "inference_geo",
        "speed",
        "diagnostics",
        "workspace_id",
        "user_profile_id",
    }
)
_REJECTED_KEYS: dict[str, str] = {
    "container": "containers are not supported by this gateway",
    "mcp_servers": "MCP servers are not supported by this gateway",
    "context_management": "context management is not supported by this gateway",
}
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh"})
_UNSUPPORTED_BLOCKS: dict[str, str] = {
    "document": "document blocks are not supported by this gateway",
    "thinking": "thinking blocks are not supported by this gateway",
    "redacted_thinking": "redacted_thinking blocks are not supported by this gateway",
    "server_tool_use": "server tools are not supported by this gateway",
    "web_search_tool_result": "server tools are not supported by this gateway",
    "web_fetch_tool_result": "server tools are not supported by this gateway",
    "search_result": "search_result blocks are not supported by this gateway",
    "container_upload": "containers are not supported by this gateway",
}
_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
}


# --------------------------------------------------------------------------- validation helpers


def _invalid(param: str, message: str) -> GatewayError:
    return GatewayError("invalid_request", f"{param}: {message}", param=param)


def _required(param: str) -> GatewayError:
    return _invalid(param, "Field required")


def _str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid(param, "Input should be a valid string")
    return value


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(param, "Input should be a valid boolean")
    return value


def _int(value: object, param: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(param, "Input should be a valid integer")
    if value < lo:
        raise _invalid(param, f"Input should be greater than or equal to {lo}")
    return value


def _number(value: object, param: str, lo: float, hi: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(param, "Input should be a valid number")
    if value < lo:
        raise _invalid(param, f"Input should be greater than or equal to {lo:g}")
    if value > hi:
        raise _invalid(param, f"Input should be less than or equal to {hi:g}")
    return value


def _obj(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(param, "Input should be a valid dictionary")
    return value


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(param, "Input should be a valid list")
    return value


def _extra(param: str) -> GatewayError:
    return _invalid(param, "Extra inputs are not permitted")


def _check_keys(block: dict[str, Any], allowed: frozenset[str], param: str) -> None:
    for key in block:
        if key not in allowed:
            raise _extra(f"{param}.{key}")


# ------------------------------------------------------------------------------------ blocks


def _block(raw: object, param: str) -> tuple[str, dict[str, Any]]:
    block = _obj(raw, param)
    kind = block.get("type")
    if kind is None:
        raise _required(f"{param}.type")
    if kind not in _BLOCK_KEYS:
        reason = _UNSUPPORTED_BLOCKS.get(kind) if isinstance(kind, str) else None
        if reason is not None:
            raise _invalid(f"{param}.type", f"'{kind}': {reason}")
        raise _invalid(f"{param}.type", f"Input tag '{kind}' is not a supported content block type")
    _check_keys(block, _BLOCK_KEYS[kind], param)
    return kind, block


def _text(block: dict[str, Any], param: str) -> str:
    if "text" not in block:
        raise _required(f"{param}.text")
    text = _str(block["text"], f"{param}.text")
    if block.get("citations"):
        raise _invalid(f"{param}.citations", "citations are not supported by this gateway")
    return text


def _image(block: dict[str, Any], param: str) -> dict[str, Any]:
    if "source" not in block:
        raise _required(f"{param}.source")
    p = f"{param}.source"
    source = _obj(block["source"], p)
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in _MEDIA_TYPES:
            raise _invalid(
                f"{p}.media_type",
                "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            )
        if "data" not in source:
            raise _required(f"{p}.data")
        data = _str(source["data"], f"{p}.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        if "url" not in source:
            raise _required(f"{p}.url")
        url = _str(source["url"], f"{p}.url")
    elif kind == "file":
        raise _invalid(f"{p}.type", "file sources are not supported by this gateway")
    else:
        raise _invalid(f"{p}.type", "Input tag should be 'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    if "tool_use_id" not in block:
        raise _required(f"{param}.tool_use_id")
    tool_use_id = _str(block["tool_use_id"], f"{param}.tool_use_id")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts: list[str] = []
        for j, raw in enumerate(_list(content, f"{param}.content")):
            p = f"{param}.content.{j}"
            kind, inner = _block(raw, p)
            if kind != "text":
                raise _invalid(
                    f"{p}.type",
                    f"'{kind}' blocks inside tool_result are not supported by this gateway; "
                    "only text",
                )
            texts.append(_text(inner, p))
        text = "\n".join(texts)
    is_error = block.get("is_error")
    if is_error is not None and _bool(is_error, f"{param}.is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _parts_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


# ---------------------------------------------------------------------------------- messages

_EMPTY_CONTENT = (
    "all messages must have non-empty content except for the optional final assistant message"
)


class _Converter:
    """Walks the Anthropic messages once, emitting canonical messages and checking tool pairing."""

    __slots__ = ("out", "pending", "pending_at")

    def __init__(self, out: list[dict[str, Any]]) -> None:
        self.out = out
        self.pending: list[str] = []
        self.pending_at = -1

    def unanswered(self, param: str) -> GatewayError:
        return _invalid(
            param,
            "tool_use ids were found without tool_result blocks immediately after: "
            f"{', '.join(self.pending)}. Each tool_use block must have a corresponding "
            "tool_result block in the next message.",
        )

    def assistant(self, content: object, index: int) -> None:
        param = f"messages.{index}.content"
        if self.pending:
            raise self.unanswered(f"messages.{self.pending_at}.content")
        if isinstance(content, str):
            self.out.append({"role": "assistant", "content": content})
            return
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for j, raw in enumerate(_list(content, param)):
            p = f"{param}.{j}"
            kind, block = _block(raw, p)
            if kind == "text":
                parts.append({"type": "text", "text": _text(block, p)})
            elif kind == "tool_use":
                for key in ("id", "name", "input"):
                    if key not in block:
                        raise _required(f"{p}.{key}")
                call_id = _str(block["id"], f"{p}.id")
                name = _str(block["name"], f"{p}.name")
                arguments = orjson.dumps(_obj(block["input"], f"{p}.input")).decode()
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                )
            else:
                raise _invalid(f"{p}.type", f"'{kind}' blocks are not allowed in assistant turns")
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": _parts_content(parts) if parts else None,
        }
        if calls:
            msg["tool_calls"] = calls
            self.pending = [c["id"] for c in calls]
            self.pending_at = index
        elif not parts:
            raise _invalid(param, _EMPTY_CONTENT)
        self.out.append(msg)

    def user(self, content: object, index: int) -> None:
        param = f"messages.{index}.content"
        if isinstance(content, str):
            if self.pending:
                raise self.unanswered(f"messages.{self.pending_at}.content")
            if not content:
                raise _invalid(param, _EMPTY_CONTENT)
            self.out.append({"role": "user", "content": content})
            return
        blocks = _list(content, param)
        if not blocks:
            raise _invalid(param, _EMPTY_CONTENT)
        parts: list[dict[str, Any]] = []
        pending = self.pending
        for j, raw in enumerate(blocks):
            p = f"{param}.{j}"
            kind, block = _block(raw, p)
            if kind == "tool_result":
                if parts:
                    raise _invalid(
                        p,
                        "tool_result blocks must come first in the content of a user message, "
                        "before any other blocks",
                    )
                result = _tool_result(block, p)
                if result["tool_call_id"] not in pending:
                    raise _invalid(
                        p,
                        f"unexpected tool_use_id found in tool_result blocks: "
                        f"{result['tool_call_id']}. Each tool_result block must have a "
                        "corresponding tool_use block in the previous message.",
                    )
                pending.remove(result["tool_call_id"])
                self.out.append(result)
            elif kind == "text":
                parts.append({"type": "text", "text": _text(block, p)})
            elif kind == "image":
                parts.append(_image(block, p))
            else:
                raise _invalid(f"{p}.type", f"'{kind}' blocks are not allowed in user turns")
        if pending:
            raise self.unanswered(f"messages.{self.pending_at}.content")
        if parts:
            self.out.append({"role": "user", "content": _parts_content(parts)})


def _system(value: object) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"role": "system", "content": value} if value else None
    parts: list[dict[str, Any]] = []
    for i, raw in enumerate(_list(value, "system")):
        p = f"system.{i}"
        kind, block = _block(raw, p)
        if kind != "text":
            raise _invalid(f"{p}.type", "Input tag should be 'text'")
        parts.append({"type": "text", "text": _text(block, p)})
    if not parts:
        return None
    return {"role": "system", "content": _parts_content(parts)}


def _messages(value: object, system: object) -> list[dict[str, Any]]:
    raw = _list(value, "messages")
    if not raw:
        raise _invalid("messages", "at least one message is required")
    out: list[dict[str, Any]] = []
    if system is not None and (sys_msg := _system(system)) is not None:
        out.append(sys_msg)
    conv = _Converter(out)
    last = len(raw) - 1
    for i, item in enumerate(raw):
        p = f"messages.{i}"
        msg = _obj(item, p)
        _check_keys(msg, frozenset({"role", "content"}), p)
        if "role" not in msg:
            raise _required(f"{p}.role")
        if "content" not in msg:
            raise _required(f"{p}.content")
        role = msg["role"]
        if role == "user":
            conv.user(msg["content"], i)
        elif role == "assistant":
            if i == last:
                raise _invalid(
                    p,
                    "a final assistant message (prefill) is not supported by this gateway; "
                    "end the conversation with a user message",
                )
            conv.assistant(msg["content"], i)
        else:
            raise _invalid(f"{p}.role", "Input should be 'user' or 'assistant'")
    return out


# ----------------------------------------------------------------------------- tools, options

_TOOL_KEYS = frozenset(
    {
        "name",
        "description",
        "input_schema",
        "cache_control",
        "type",
        "strict",
        "eager_input_streaming",
    }
)


def _tools(value: object) -> list[dict[str, Any]] | None:
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(_list(value, "tools")):
        p = f"tools.{i}"
        tool = _obj(raw, p)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            raise _invalid(
                f"{p}.type",
                f"server tool '{kind}' is not supported by this gateway; only client tools "
                "(name, description, input_schema)",
            )
        _check_keys(tool, _TOOL_KEYS, p)
        if "name" not in tool:
            raise _required(f"{p}.name")
        name = _str(tool["name"], f"{p}.name")
        if not _NAME_RE.match(name):
            raise _invalid(f"{p}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
        if name in seen:
            raise _invalid(p, f"Tool names must be unique; '{name}' is used twice")
        seen.add(name)
        if "input_schema" not in tool:
            raise _required(f"{p}.input_schema")
        schema = _obj(tool["input_schema"], f"{p}.input_schema")
        if schema.get("type") != "object":
            raise _invalid(f"{p}.input_schema.type", "Input should be 'object'")
        fn: dict[str, Any] = {"name": name}
        description = tool.get("description")
        if description is not None:
            fn["description"] = _str(description, f"{p}.description")
        fn["parameters"] = schema
        strict = tool.get("strict")
        if strict is not None:
            fn["strict"] = _bool(strict, f"{p}.strict")
        tools.append({"type": "function", "function": fn})
    return tools or None


def _tool_choice(value: object, tools: list[dict[str, Any]] | None, params: dict[str, Any]) -> Any:
    choice = _obj(value, "tool_choice")
    kind = choice.get("type")
    allowed = {"type", "disable_parallel_tool_use"}
    if kind == "tool":
        allowed.add("name")
    elif kind == "none":
        allowed = {"type"}
    elif kind not in ("auto", "any"):
        raise _invalid("tool_choice.type", "Input tag should be 'auto', 'any', 'tool' or 'none'")
    _check_keys(choice, frozenset(allowed), "tool_choice")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and _bool(disable, "tool_choice.disable_parallel_tool_use"):
        params["parallel_tool_calls"] = False
    if kind == "auto":
        return "auto" if tools else None
    if kind == "none":
        return "none" if tools else None
    if not tools:
        raise _invalid("tool_choice", f"tool_choice '{kind}' requires 'tools' to be specified")
    if kind == "any":
        return "required"
    if "name" not in choice:
        raise _required("tool_choice.name")
    name = _str(choice["name"], "tool_choice.name")
    if all(t["function"]["name"] != name for t in tools):
        raise _invalid("tool_choice.name", f"Tool '{name}' not found in tools")
    return {"type": "function", "function": {"name": name}}


def _output_config(value: object, params: dict[str, Any]) -> dict[str, Any] | None:
    config = _obj(value, "output_config")
    _check_keys(config, frozenset({"effort", "format"}), "output_config")
    effort = config.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _invalid(
                "output_config.effort",
                "Input should be 'low', 'medium', 'high' or 'xhigh' (this gateway has no 'max')",
            )
        params["reasoning_effort"] = effort
    fmt = config.get("format")
    if fmt is None:
        return None
    fmt = _obj(fmt, "output_config.format")
    _check_keys(fmt, frozenset({"type", "schema"}), "output_config.format")
    if fmt.get("type") != "json_schema":
        raise _invalid("output_config.format.type", "Input should be 'json_schema'")
    if "schema" not in fmt:
        raise _required("output_config.format.schema")
    schema = _obj(fmt["schema"], "output_config.format.schema")
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


# ------------------------------------------------------------------------------------ request

_HANDLED = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "stream",
        "thinking",
        "output_config",
    }
)


def parse_messages_request(body: object) -> ChatRequest:
    """Validate an Anthropic ``/v1/messages`` body and translate it to a canonical request.

    Raises ``GatewayError("invalid_request", "<path>: <message>", param="<path>")``.
    """
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "The request body must be a JSON object")
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED_KEYS:
            continue
        reason = _REJECTED_KEYS.get(key)
        if reason is not None:
            if value is None:
                continue
            raise _invalid(key, reason)
        raise _extra(key)

    if "model" not in body:
        raise _required("model")
    model = _str(body["model"], "model")
    if not model:
        raise _invalid("model", "String should have at least 1 character")
    if "max_tokens" not in body:
        raise _required("max_tokens")
    params: dict[str, Any] = {"max_tokens": _int(body["max_tokens"], "max_tokens", lo=1)}
    if "messages" not in body:
        raise _required("messages")
    get = body.get
    messages = _messages(body["messages"], get("system"))

    thinking = get("thinking")
    if thinking is not None and _obj(thinking, "thinking").get("type") != "disabled":
        raise _invalid("thinking", "extended thinking is not supported by this gateway yet")

    tools_raw = get("tools")
    tools = _tools(tools_raw) if tools_raw is not None else None
    tool_choice_raw = get("tool_choice")
    tool_choice = _tool_choice(tool_choice_raw, tools, params) if tool_choice_raw else None
    output_config = get("output_config")
    response_format = _output_config(output_config, params) if output_config is not None else None

    stop = get("stop_sequences")
    if stop is not None:
        stops = [
            _str(s, f"stop_sequences.{i}") for i, s in enumerate(_list(stop, "stop_sequences"))
        ]
        if stops:
            params["stop"] = stops
    if (v := get("temperature")) is not None:
        params["temperature"] = _number(v, "temperature", 0, 1)
    if (v := get("top_p")) is not None:
        params["top_p"] = _number(v, "top_p", 0, 1)
    if (v := get("top_k")) is not None:
        params["top_k"] = _int(v, "top_k", lo=1)
    metadata = get("metadata")
    if metadata is not None:
        meta = _obj(metadata, "metadata")
        _check_keys(meta, frozenset({"user_id"}), "metadata")
        user_id = meta.get("user_id")
        if user_id is not None:
            params["user"] = _str(user_id, "metadata.user_id")
    stream = get("stream")

    return ChatRequest(
        model=model,
        messages=messages,
        stream=False if stream is None else _bool(stream, "stream"),
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        params=params,
    )


# ---------------------------------------------------------------------------------- responses


def _message_id(raw: str) -> str:
    return raw if raw.startswith("msg_") else f"msg_{raw}"


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": max(
            usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0
        ),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    if isinstance(parsed, dict):
        return parsed
    return {"_raw_arguments": arguments}


def render_message_response(resp: ChatResponse, *, model: str) -> bytes:
    """An Anthropic ``message`` object; ``model`` is the name the client asked for."""
    content: list[dict[str, Any]] = []
    if resp.content:
        content.append({"type": "text", "text": resp.content})
    for tc in resp.tool_calls:
        content.append(
            {"type": "tool_use", "id": tc.id, "name": tc.name, "input": _tool_input(tc.arguments)}
        )
    return orjson.dumps(
        {
            "id": _message_id(resp.id),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP_REASONS[resp.finish_reason],
            "stop_sequence": None,
            "usage": _usage(resp.usage),
        }
    )


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageStreamRenderer:
    """Renders canonical deltas as Anthropic Messages SSE events.

    The first ``delta()`` sends ``message_start`` (and a ``ping``, as Anthropic does). Text and
    each tool call get their own content block, opened on first use and closed when another
    block opens or at ``end()``. A fragment for an already closed tool block (only happens if an
    upstream interleaves parallel calls) is still sent against that block's index, which the
    SDK's accumulator handles.
    """

    __slots__ = (
        "_blocks",
        "_finish",
        "_id",
        "_input_tokens",
        "_model",
        "_open",
        "_started",
        "_text_block",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, *, id: str, model: str, input_tokens: int | None = None) -> None:
        self._id = _message_id(id)
        self._model = model
        self._input_tokens = input_tokens
        self._started = False
        self._blocks = 0  # content blocks opened so far
        self._open: int | None = None  # index of the open block
        self._text_block: int | None = None  # index of the open text block
        self._tool_blocks: dict[int, int] = {}  # tool call index -> block index
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def _start(self) -> bytes:
        self._started = True
        input_tokens = self._input_tokens
        if input_tokens is None:
            # An upstream that reports usage up front (Anthropic's own message_start) lets us
            # fill it in now; otherwise 0 until message_delta carries the real count.
            input_tokens = _usage(self._usage)["input_tokens"] if self._usage is not None else 0
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }
        return _event(b"message_start", {"type": "message_start", "message": message}) + (
            b'event: ping\ndata: {"type": "ping"}\n\n'
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open, self._text_block = self._open, None, None
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})

    def _open_block(self, block: dict[str, Any]) -> tuple[int, bytes]:
        out = self._close()
        index = self._blocks
        self._blocks += 1
        self._open = index
        out += _event(
            b"content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        return index, out

    def delta(self, d: StreamDelta) -> bytes:
        if d.usage is not None:
            self._usage = d.usage
        out = b"" if self._started else self._start()
        if d.finish_reason is not None:
            self._finish = d.finish_reason
        if d.content:
            index = self._text_block
            if index is None:
                index, opened = self._open_block({"type": "text", "text": ""})
                self._text_block = index
                out += opened
            out += _event(
                b"content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": d.content},
                },
            )
        if d.tool_calls:
            for tc in d.tool_calls:
                index = self._tool_blocks.get(tc.index)
                if index is None:
                    block = {
                        "type": "tool_use",
                        "id": tc.id if tc.id is not None else f"toolu_{self._id}_{tc.index}",
                        "name": tc.name or "",
                        "input": {},
                    }
                    index, opened = self._open_block(block)
                    self._tool_blocks[tc.index] = index
                    out += opened
                if tc.arguments:
                    out += _event(
                        b"content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": tc.arguments},
                        },
                    )
        return out

    def end(self) -> bytes:
        out = b"" if self._started else self._start()
        out += self._close()
        finish = self._finish
        if finish is None:
            finish = "tool_calls" if self._tool_blocks else "stop"
        usage = _usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        out += _event(
            b"message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _STOP_REASONS[finish], "stop_sequence": None},
                "usage": usage,
            },
        )
        return out + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    def error(self, err: GatewayError) -> bytes:
        return _event(b"error", _error_body(err))


# ------------------------------------------------------------------------------------- errors


def _error_body(err: GatewayError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(err.kind, "api_error"), "message": err.message},
    }


def render_error(err: GatewayError) -> bytes:
    """The JSON body of an Anthropic error response (send it with ``err.status``)."""
    return orjson.dumps(_error_body(err))
