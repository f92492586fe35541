"""A client's Responses API body -> canonical ``ChatRequest``.

The Responses shape is checked here (items, tools, ``text.format``, what is refused); the
translated Chat Completions body then goes through ``parse_chat_request``, so messages, tools,
schemas and sampling parameters are validated exactly as on ``/v1/chat/completions``.

Translation: ``instructions`` -> a leading system message (not carried over from a previous
response, as OpenAI does); message items -> chat messages (``input_text``/``output_text`` ->
text parts, ``input_image`` -> ``image_url``, ``input_file`` with ``file_data`` -> a file part);
``function_call`` items -> the assistant's ``tool_calls``; ``function_call_output`` -> tool
messages; ``reasoning`` items are opaque to other vendors and reach only an upstream that
speaks Responses (the body passes through there unchanged). Function tools, ``tool_choice``,
``text.format`` (``json_object``/``json_schema``), ``reasoning.effort``, ``max_output_tokens``,
``temperature``, ``top_p``, ``parallel_tool_calls``, ``user`` and ``metadata`` map one to one.

Refused with a 400 naming the field: built-in tools (web search, file search, computer use,
MCP, code interpreter...), ``item_reference`` and other non-function items, file ids,
``background``, ``conversation``, ``prompt`` templates, ``top_logprobs``, ``max_tool_calls``,
``context_management``, ``moderation``, ``text.verbosity`` other than ``medium``. Accepted
without effect on the answer: ``service_tier``, ``prompt_cache_*``, ``safety_identifier``,
``stream_options``, ``truncation`` (modelmix never truncates), ``include`` (except output
logprobs, which are refused).

Keys this module does not know, at the top or inside ``input`` items (``fields.py``), are
unknown fields (``ChatRequest.unknown``, by path): a ``provider: openai-responses`` upstream
gets them in the client's body, any other model follows its ``params.unknown``
(wire/extensions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmix.errors import GatewayError
from modelmix.types import ChatRequest, NativeRequest
from modelmix.wire.openai_chat.client import _obj as _dict
from modelmix.wire.openai_chat.client import _str, parse_chat_request
from modelmix.wire.openai_responses.fields import ITEM_KEYS, PART_KEYS, extra_keys, top_level

__all__ = ["ResponsesRequest", "parse_responses_request", "to_chat_request"]

_IGNORED = frozenset(
    {
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "stream_options",
        "truncation",
    }
)
_REFUSED: dict[str, str] = {
    "background": "background responses are not supported by this gateway",
    "conversation": "conversations are not supported by this gateway; use previous_response_id",
    "prompt": "prompt templates are not supported by this gateway",
    "max_tool_calls": "'max_tool_calls' is not supported by this gateway",
    "context_management": "context management is not supported by this gateway",
    "moderation": "OpenAI moderation is not supported by this gateway",
    "access_programs": "'access_programs' is not supported by this gateway",
    "image": "image generation options are not supported by this gateway",
    "background_options": "background responses are not supported by this gateway",
}
#: Keys copied into the Chat Completions body as they are (validated there).
_SAME_NAME = ("temperature", "top_p", "parallel_tool_calls", "user", "metadata")
_HANDLED = frozenset(
    {
        *_SAME_NAME,
        "model",
        "input",
        "instructions",
        "stream",
        "store",
        "previous_response_id",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "include",
        "top_logprobs",
    }
)
_KNOWN = frozenset({*_HANDLED, *_IGNORED, *_REFUSED})
#: Where unknown fields inside input items go (None: not looked for, as in stored history).
Extra = dict[str, Any] | None
_ROLES = frozenset({"user", "system", "developer", "assistant"})


@dataclass(slots=True)
class ResponsesRequest:
    """The Responses side of a request, kept on ``ChatRequest.responses``."""

    #: The body as the client sent it (what a Responses upstream receives, model replaced).
    body: dict[str, Any]
    #: This request's ``input`` as items (a string input becomes one user message item).
    items: list[dict[str, Any]]
    store: bool = True
    previous_response_id: str | None = None
    #: Items of the stored conversation before this input (``previous_response_id``).
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The chat body translated from ``body`` (history excluded), checked in ``to_chat_request``.
    chat_body: dict[str, Any] = field(default_factory=dict)
    #: Where the answer is stored (set by the endpoint; None: not stored).
    store_ref: Any = None
    key_id: str | None = None
    #: Fields modelmix does not know, top-level and inside ``input`` items, by path.
    unknown: dict[str, Any] | None = None


def _invalid(param: str, message: str, code: str = "invalid_value") -> GatewayError:
    return GatewayError("invalid_request", message, param=param, code=code)


def _unsupported(param: str, reason: str) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Unsupported parameter: '{param}': {reason}.",
        param=param,
        code="unsupported_parameter",
    )


# ------------------------------------------------------------------------------------- items


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str):
        if part.get("file_id") is not None:
            raise _unsupported(f"{param}.file_id", "uploaded files are not supported")
        raise _invalid(f"{param}.image_url", f"Missing required parameter: '{param}.image_url'.")
    image: dict[str, Any] = {"url": url}
    if part.get("detail") is not None:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    data = part.get("file_data")
    if not isinstance(data, str):
        raise _unsupported(
            f"{param}.file_data", "only inline files (file_data) are supported, not ids or URLs"
        )
    file: dict[str, Any] = {"file_data": data}
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _part(part: object, param: str, extra: Extra) -> dict[str, Any]:
    part = _dict(part, param)
    kind: Any = part.get("type")
    if extra is not None:
        known = PART_KEYS.get(kind)
        if known is not None and not known.issuperset(part):
            extra_keys(part, known, param, extra)
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _str(part.get("text"), f"{param}.text")}
    if kind == "refusal":
        return {"type": "text", "text": _str(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_image":
        return _image_part(part, param)
    if kind == "input_file":
        return _file_part(part, param)
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise _invalid(
        f"{param}.type",
        f"Invalid value for '{param}.type': '{kind}' is not a supported content part "
        "('input_text', 'input_image', 'input_file', 'input_audio', 'output_text', 'refusal').",
    )


def _message(item: dict[str, Any], param: str, extra: Extra) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _invalid(
            f"{param}.role",
            f"Invalid value for '{param}.role': expected one of 'user', 'system', 'developer' "
            f"or 'assistant', but got {role!r}.",
        )
    content = item.get("content")
    if isinstance(content, list):
        parts = [_part(p, f"{param}.content[{i}]", extra) for i, p in enumerate(content)]
        if role == "assistant" and any(p["type"] != "text" for p in parts):
            raise _unsupported(f"{param}.content", "assistant messages carry text only")
        # one text part: a plain string, as every upstream takes; else the parts as they are
        content = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
    elif not isinstance(content, str):
        raise _invalid(
            f"{param}.content",
            f"Invalid type for '{param}.content': expected a string or an array of parts.",
            "invalid_type",
        )
    return {"role": role, "content": content}


def _call(item: dict[str, Any], param: str) -> dict[str, Any]:
    return {
        "id": _str(item.get("call_id"), f"{param}.call_id"),
        "type": "function",
        "function": {
            "name": _str(item.get("name"), f"{param}.name"),
            "arguments": _str(item.get("arguments"), f"{param}.arguments"),
        },
    }


def _output_text(output: object, param: str, extra: Extra) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(p, f"{param}[{i}]", extra) for i, p in enumerate(output)]
        for i, part in enumerate(parts):
            if part["type"] != "text":  # tool messages carry text only, on every upstream
                raise _unsupported(f"{param}[{i}]", "tool outputs other than text")
        return "".join(part["text"] for part in parts)
    raise _invalid(param, f"Invalid type for '{param}': expected a string.", "invalid_type")


def items_to_messages(
    items: list[dict[str, Any]], param: str = "input", extra: Extra = None
) -> list[dict[str, Any]]:
    """Chat messages for Responses input items (see the module docstring); keys the items and
    their parts do not have go to ``extra`` by path (``input.0.foo``) when it is given."""
    messages: list[dict[str, Any]] = []
    for i, raw in enumerate(items):
        p = f"{param}[{i}]"
        item = _dict(raw, p)
        kind = item.get("type") or ("message" if "role" in item else None)
        if extra is not None:
            known = ITEM_KEYS.get(kind)  # type: ignore[arg-type]
            if known is not None and not known.issuperset(item):
                extra_keys(item, known, p, extra)
        if kind == "message":
            messages.append(_message(item, p, extra))
        elif kind == "function_call":
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(_call(item, p))
                last["content"] = last.get("content") or None
            else:
                messages.append(
                    {"role": "assistant", "content": None, "tool_calls": [_call(item, p)]}
                )
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": _str(item.get("call_id"), f"{p}.call_id"),
                    "content": _output_text(item.get("output"), f"{p}.output", extra),
                }
            )
        elif kind == "reasoning":
            continue  # opaque (encrypted) reasoning: only a Responses upstream can use it
        else:
            raise _unsupported(
                f"{p}.type",
                f"input items of type {kind!r} are not supported by this gateway (supported: "
                "message, function_call, function_call_output, reasoning)",
            )
    return messages


def _input_items(value: object) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return [_dict(item, f"input[{i}]") for i, item in enumerate(value)]
    raise _invalid(
        "input", "Invalid type for 'input': expected a string or an array of items.", "invalid_type"
    )


# ------------------------------------------------------------------------------ tools, text


def _tool(tool: object, param: str) -> dict[str, Any]:
    tool = _dict(tool, param)
    kind = tool.get("type")
    if kind != "function":
        raise _unsupported(
            f"{param}.type", f"built-in tool {kind!r} is not supported by this gateway"
        )
    fn: dict[str, Any] = {"name": tool.get("name")}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            fn[key] = tool[key]
    return {"type": "function", "function": fn}


def _tool_choice(value: object) -> Any:
    if value is None or isinstance(value, str):
        return value
    choice = _dict(value, "tool_choice")
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _unsupported("tool_choice", f"tool_choice of type {choice.get('type')!r}")


def _text_format(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    text = _dict(value, "text")
    verbosity = text.get("verbosity")
    if verbosity not in (None, "medium"):
        raise _unsupported("text.verbosity", "only the default ('medium') is portable")
    fmt = text.get("format")
    if fmt is None:
        return None
    fmt = _dict(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise _invalid(
        "text.format.type",
        "Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
    )


# ----------------------------------------------------------------------------------- request


def _check_keys(body: dict[str, Any]) -> None:
    for key, value in body.items():
        reason = _REFUSED.get(key)
        if reason is not None and value is not None and value is not False:
            raise _unsupported(key, reason)
    if body.get("top_logprobs"):
        raise _unsupported("top_logprobs", "output logprobs are not supported on /v1/responses")
    include = body.get("include") or ()
    if "message.output_text.logprobs" in include:
        raise _unsupported("include", "output logprobs are not supported on /v1/responses")


def _chat_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": model, "stream": body.get("stream") or False}
    for key in _SAME_NAME:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise _invalid("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
        chat["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _text_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if reasoning is not None and _dict(reasoning, "reasoning").get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    return chat


def parse_responses_request(body: object) -> ChatRequest:
    """Check a ``POST /v1/responses`` body; the canonical request is completed by
    ``to_chat_request`` once the stored conversation (``previous_response_id``) is known."""
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "The request body must be a JSON object.")
    _check_keys(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid(
            "model", "Missing required parameter: 'model'.", "missing_required_parameter"
        )
    if body.get("input") is None:
        raise _invalid(
            "input", "Missing required parameter: 'input'.", "missing_required_parameter"
        )
    items = _input_items(body["input"])
    previous = body.get("previous_response_id")
    store = body.get("store")
    native = ResponsesRequest(
        body=body,
        items=items,
        store=True if store is None else bool(store),
        previous_response_id=_str(previous, "previous_response_id") if previous else None,
        chat_body=_chat_body(body, model),
        unknown=top_level(body, _KNOWN),
    )
    stream = native.chat_body["stream"]
    return ChatRequest(model=model, messages=[], stream=stream is True, responses=native)


def to_chat_request(chat: ChatRequest) -> ChatRequest:
    """The complete canonical request: instructions, stored history, then this input."""
    native: ResponsesRequest = chat.responses
    messages: list[dict[str, Any]] = []
    instructions = native.body.get("instructions")
    if instructions is not None:
        messages.append({"role": "system", "content": _str(instructions, "instructions")})
    if native.history:
        messages += items_to_messages(native.history, "previous_response")
    nested: dict[str, Any] = {}
    messages += items_to_messages(native.items, "input", nested)
    if nested:
        native.unknown = {**(native.unknown or {}), **nested}
    if not messages:
        raise _invalid("input", "Invalid 'input': expected at least one item.", "empty_array")
    full = parse_chat_request({**native.chat_body, "messages": messages})
    full.responses = native
    if native.unknown is not None:  # judged per model by wire/extensions.py
        full.unknown = native.unknown
        full.native = NativeRequest("openai-responses", native.body)
    full.max_tokens_name = "max_completion_tokens"
    return full
