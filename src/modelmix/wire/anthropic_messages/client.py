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
  ``diagnostics``, ``workspace_id``, ``user_profile_id`` are accepted; other formats ignore
  them (they change cost, latency or bookkeeping, not the answer).
* ``output_config.format`` (JSON schema) becomes ``response_format`` json_schema (strict, named
  ``output``); ``output_config.effort`` becomes ``reasoning_effort``.
* The whole body is also kept (``ChatRequest.native``): an Anthropic upstream gets it as it is
  (``passthrough.py``). What other formats cannot carry is recorded, not refused, here:
  ``native.features`` holds ``thinking``, earlier ``thinking`` / ``redacted_thinking`` blocks,
  ``context_management``, ``container``, ``mcp_servers``, server tools and server tool blocks,
  documents other than text or base64 PDF, file image sources, non-text tool result content,
  citations and a final assistant message (prefill), each with its handling at another format;
  ``ChatRequest.unknown`` holds fields (top level or nested, by dotted path) and block types this
  gateway does not know. A null field is a client library's default and is ignored.
  ``wire/extensions.py`` decides per model (the README's table).
* ``document`` blocks: text and content sources become text parts (title first), base64 PDFs an
  OpenAI ``file`` part. ``system`` turns among the messages (a Claude Code beta) become
  ``system`` messages in place.
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
from modelmix.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    NativeRequest,
    StreamDelta,
    Usage,
)
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
#: Top-level features of the Messages API that other formats have no counterpart for:
#: name -> (handling at a non-Anthropic upstream, why); see wire/extensions.py.
_FEATURE_KEYS: dict[str, tuple[str, str]] = {
    "container": ("refuse", "containers are an Anthropic server feature"),
    "mcp_servers": ("refuse", "the MCP connector is an Anthropic server feature"),
    "context_management": (
        "drop",
        "context editing is done by Anthropic: earlier thinking is never sent to other "
        "providers, the rest of the context is sent in full",
    ),
}
_THINKING = (
    "reasoning",
    "extended thinking: the model takes no reasoning effort, so it answered without",
)
_THINKING_BLOCKS = (
    "drop",
    "earlier turns' thinking blocks are not sent to other providers (Anthropic leaves them "
    "out of the context too)",
)
_SERVER_BLOCK = ("refuse", "server tool blocks are run by Anthropic")
_SERVER_BLOCKS = frozenset(
    {"server_tool_use", "mcp_tool_use", "mcp_tool_result", "container_upload", "search_result"}
)
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control"}),
    "tool_use": frozenset({"type", "id", "name", "input", "cache_control"}),
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}),
    "document": frozenset({"type", "source", "title", "context", "citations", "cache_control"}),
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}


class _Extras:
    """What a request holds beyond the canonical: Messages features and unknown fields."""

    __slots__ = ("features", "unknown")

    def __init__(self) -> None:
        self.features: dict[str, tuple[str, str]] = {}
        self.unknown: dict[str, Any] = {}


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


def _check_keys(block: dict[str, Any], allowed: frozenset[str], param: str, ex: _Extras) -> None:
    """Keys beyond ``allowed``: a null one is a client library's default (ignored), any other
    an unknown field (kept for the upstream; see wire/extensions.py)."""
    for key, value in block.items():
        if key not in allowed and value is not None:
            ex.unknown[f"{param}.{key}"] = value


# ------------------------------------------------------------------------------------ blocks


def _block(raw: object, param: str, ex: _Extras) -> tuple[str, dict[str, Any]]:
    """A content block's type and body. A type other formats cannot carry (server tool
    blocks, types newer than this gateway) comes back as ``""``: recorded, left out of the
    canonical request."""
    block = _obj(raw, param)
    kind = block.get("type")
    if kind is None:
        raise _required(f"{param}.type")
    if not isinstance(kind, str):
        raise _invalid(f"{param}.type", "Input should be a valid string")
    if kind not in _BLOCK_KEYS:
        if kind.endswith("_tool_result") or kind in _SERVER_BLOCKS:
            ex.features[param] = (_SERVER_BLOCK[0], f"'{kind}': {_SERVER_BLOCK[1]}")
        else:
            ex.unknown[param] = block
        return "", block
    _check_keys(block, _BLOCK_KEYS[kind], param, ex)
    return kind, block


def _text(block: dict[str, Any], param: str, ex: _Extras) -> str:
    if "text" not in block:
        raise _required(f"{param}.text")
    text = _str(block["text"], f"{param}.text")
    if block.get("citations"):
        ex.features[f"{param}.citations"] = (
            "drop",
            "citations are Anthropic's; other providers get the text alone",
        )
    return text


def _document(block: dict[str, Any], param: str, ex: _Extras) -> dict[str, Any] | None:
    """A ``document`` block as a canonical part: plain text and text blocks become text
    (titled), a base64 PDF an OpenAI ``file`` part; None (recorded) when no other format
    can carry it (a PDF by URL or file id)."""
    if "source" not in block:
        raise _required(f"{param}.source")
    p = f"{param}.source"
    source = _obj(block["source"], p)
    kind = source.get("type")
    title = block.get("title")
    head = f"{_str(title, f'{param}.title')}\n\n" if title else ""
    if kind == "text":
        return {"type": "text", "text": head + _str(source.get("data"), f"{p}.data")}
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return {"type": "text", "text": head + content}
        texts = []
        for j, raw in enumerate(_list(content, f"{p}.content")):
            inner_kind, inner = _block(raw, f"{p}.content.{j}", ex)
            if inner_kind == "text":
                texts.append(_text(inner, f"{p}.content.{j}", ex))
        return {"type": "text", "text": head + "\n".join(texts)}
    if kind == "base64" and source.get("media_type") == "application/pdf":
        data = _str(source.get("data"), f"{p}.data")
        name = title if isinstance(title, str) and title else "document.pdf"
        return {
            "type": "file",
            "file": {"filename": name, "file_data": f"data:application/pdf;base64,{data}"},
        }
    if kind not in ("base64", "url", "file"):
        raise _invalid(f"{p}.type", "Input tag should be 'base64', 'text', 'content' or 'url'")
    ex.features[p] = ("refuse", f"a document from a {kind!r} source is read by Anthropic")
    return None


def _image(block: dict[str, Any], param: str, ex: _Extras) -> dict[str, Any] | None:
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
        ex.features[p] = ("refuse", "an image from the Files API is read by Anthropic")
        return None
    else:
        raise _invalid(f"{p}.type", "Input tag should be 'base64' or 'url'")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], param: str, ex: _Extras) -> dict[str, Any]:
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
            kind, inner = _block(raw, p, ex)
            if kind == "text":
                texts.append(_text(inner, p, ex))
            elif kind:
                ex.features[p] = ("refuse", f"{kind} blocks inside tool results are Anthropic's")
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

    __slots__ = ("ex", "out", "pending", "pending_at")

    def __init__(self, out: list[dict[str, Any]], ex: _Extras) -> None:
        self.out = out
        self.ex = ex
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
        ex = self.ex
        blocks = _list(content, param)
        for j, raw in enumerate(blocks):
            p = f"{param}.{j}"
            kind, block = _block(raw, p, ex)
            if kind == "text":
                parts.append({"type": "text", "text": _text(block, p, ex)})
            elif kind in ("thinking", "redacted_thinking"):
                ex.features["thinking blocks"] = _THINKING_BLOCKS
            elif not kind:
                continue  # recorded by _block
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
            if not blocks:
                raise _invalid(param, _EMPTY_CONTENT)
            return  # only thinking (or blocks recorded above): nothing for other formats
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
        ex = self.ex
        for j, raw in enumerate(blocks):
            p = f"{param}.{j}"
            kind, block = _block(raw, p, ex)
            if kind == "tool_result":
                if parts:
                    raise _invalid(
                        p,
                        "tool_result blocks must come first in the content of a user message, "
                        "before any other blocks",
                    )
                result = _tool_result(block, p, ex)
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
                parts.append({"type": "text", "text": _text(block, p, ex)})
            elif kind in ("image", "document"):
                part = _image(block, p, ex) if kind == "image" else _document(block, p, ex)
                if part is not None:
                    parts.append(part)
            elif kind:
                raise _invalid(f"{p}.type", f"'{kind}' blocks are not allowed in user turns")
        if pending:
            raise self.unanswered(f"messages.{self.pending_at}.content")
        if parts:
            self.out.append({"role": "user", "content": _parts_content(parts)})


def _system(value: object, ex: _Extras, param: str = "system") -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"role": "system", "content": value} if value else None
    parts: list[dict[str, Any]] = []
    for i, raw in enumerate(_list(value, param)):
        p = f"{param}.{i}"
        kind, block = _block(raw, p, ex)
        if kind != "text":
            raise _invalid(f"{p}.type", "Input tag should be 'text'")
        parts.append({"type": "text", "text": _text(block, p, ex)})
    if not parts:
        return None
    return {"role": "system", "content": _parts_content(parts)}


def _messages(value: object, system: object, ex: _Extras) -> list[dict[str, Any]]:
    raw = _list(value, "messages")
    if not raw:
        raise _invalid("messages", "at least one message is required")
    out: list[dict[str, Any]] = []
    if system is not None and (sys_msg := _system(system, ex)) is not None:
        out.append(sys_msg)
    conv = _Converter(out, ex)
    last = len(raw) - 1
    for i, item in enumerate(raw):
        p = f"messages.{i}"
        msg = _obj(item, p)
        _check_keys(msg, frozenset({"role", "content"}), p, ex)
        if "role" not in msg:
            raise _required(f"{p}.role")
        if "content" not in msg:
            raise _required(f"{p}.content")
        role = msg["role"]
        if role == "user":
            conv.user(msg["content"], i)
        elif role == "assistant":
            if i == last:
                ex.features[p] = (
                    "refuse",
                    "a final assistant message (prefill) has no faithful translation",
                )
            conv.assistant(msg["content"], i)
        elif role == "system":  # a system turn mid-conversation (a Claude Code beta)
            if (turn := _system(msg["content"], ex, f"{p}.content")) is not None:
                out.append(turn)
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


def _tools(value: object, ex: _Extras) -> list[dict[str, Any]] | None:
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(_list(value, "tools")):
        p = f"tools.{i}"
        tool = _obj(raw, p)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            ex.features[p] = ("refuse", f"server tool {kind!r} is run by Anthropic")
            continue
        _check_keys(tool, _TOOL_KEYS, p, ex)
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


def _tool_choice(
    value: object, tools: list[dict[str, Any]] | None, params: dict[str, Any], ex: _Extras
) -> Any:
    choice = _obj(value, "tool_choice")
    kind = choice.get("type")
    allowed = {"type", "disable_parallel_tool_use"}
    if kind == "tool":
        allowed.add("name")
    elif kind == "none":
        allowed = {"type"}
    elif kind not in ("auto", "any"):
        raise _invalid("tool_choice.type", "Input tag should be 'auto', 'any', 'tool' or 'none'")
    _check_keys(choice, frozenset(allowed), "tool_choice", ex)
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


def _output_config(value: object, params: dict[str, Any], ex: _Extras) -> dict[str, Any] | None:
    config = _obj(value, "output_config")
    _check_keys(config, frozenset({"effort", "format"}), "output_config", ex)
    effort = config.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _invalid(
                "output_config.effort", "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
            )
        params["reasoning_effort"] = effort
    fmt = config.get("format")
    if fmt is None:
        return None
    fmt = _obj(fmt, "output_config.format")
    _check_keys(fmt, frozenset({"type", "schema"}), "output_config.format", ex)
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
    ex = _Extras()
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED_KEYS or value is None:
            continue
        feature = _FEATURE_KEYS.get(key)
        if feature is not None:
            ex.features[key] = feature
        else:
            ex.unknown[key] = value

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
    messages = _messages(body["messages"], get("system"), ex)

    thinking = get("thinking")
    if thinking is not None:
        kind = _obj(thinking, "thinking").get("type")
        if kind not in ("enabled", "adaptive", "disabled"):
            raise _invalid(
                "thinking.type", "Input tag should be 'enabled', 'adaptive' or 'disabled'"
            )
        if kind != "disabled":
            ex.features["thinking"] = _THINKING

    tools_raw = get("tools")
    tools = _tools(tools_raw, ex) if tools_raw is not None else None
    tool_choice_raw = get("tool_choice")
    tool_choice = _tool_choice(tool_choice_raw, tools, params, ex) if tool_choice_raw else None
    output_config = get("output_config")
    response_format = (
        _output_config(output_config, params, ex) if output_config is not None else None
    )

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
        _check_keys(meta, frozenset({"user_id"}), "metadata", ex)
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
        unknown=ex.unknown or None,
        native=NativeRequest("anthropic", body, features=ex.features),
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
    if resp.raw is not None:  # an Anthropic upstream's own answer (passthrough)
        return orjson.dumps({**resp.raw, "model": model})
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
        "_passthrough",
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
        self._passthrough = False
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
        if d.raw is not None:  # an Anthropic upstream's own event (passthrough)
            return self._raw(d.raw)
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

    def _raw(self, raw: bytes) -> bytes:
        if self._started:
            return raw
        self._started = self._passthrough = True
        head, sep, data = raw.partition(b"data: ")
        if b"message_start" not in head or not sep:
            return raw
        event = orjson.loads(data)
        message = event.get("message")
        if isinstance(message, dict):  # the model name the client asked for, as elsewhere
            message["model"] = self._model
        return head + sep + orjson.dumps(event) + b"\n\n"

    def end(self) -> bytes:
        if self._passthrough:
            return b""  # the upstream's message_stop went out with its events
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
