"""The OpenAI Chat Completions wire format, client side: what the gateway accepts and returns.

``parse_chat_request`` validates a client's JSON body the way OpenAI does (same messages, same
``param`` paths) and turns it into a canonical ``ChatRequest``; ``render_chat_response``,
``ChatStreamRenderer`` and ``render_error`` turn canonical results back into the bytes OpenAI
would send. Everything here is pure and allocation-light: it sits on the hot path.

Top-level request keys beyond the ones we translate:

======================  ========  ==========================================================
key                     decision  why
======================  ========  ==========================================================
store                   ignored   asks OpenAI to keep the completion; no effect on the answer
service_tier            ignored   capacity/latency tier; no effect on the answer
prompt_cache_key        ignored   caching hint
prompt_cache_retention  ignored   caching hint
prompt_cache_options    ignored   caching hint (so are ``prompt_cache_breakpoint`` on parts)
safety_identifier       ignored   abuse-monitoring id; no effect on the answer
prediction              ignored   predicted output only speeds decoding up; same answer
modalities              checked   ``["text"]`` accepted; anything with ``"audio"`` rejected
stream_options          checked   ``include_usage`` honoured; ``include_obfuscation`` ignored
top_k                   accepted  common with OpenAI-compatible servers; OpenAI's API is skipped
logit_bias              unknown   (see below); ``{}`` is the default and asks for nothing
verbosity               unknown   (see below)
audio                   rejected  audio output
web_search_options      rejected  built-in web search
moderation              rejected  OpenAI-side moderation that can block the answer
functions               rejected  deprecated; use ``tools``
function_call           rejected  deprecated; use ``tool_choice``
(any other key)         unknown   kept in ``ChatRequest.unknown`` (a null one is ignored): an
                                  OpenAI-compatible upstream gets it unchanged, any other
                                  model follows its ``params.unknown`` (refuse, drop, pass;
                                  see wire/extensions.py)
======================  ========  ==========================================================

A message key with a null or empty value (the SDK's ``model_dump()`` of a message carries
``refusal``, ``annotations``, ``audio``, ``function_call``: None) is accepted and ignored. Any
other key a message, content part or tool call does not have is an unknown field too, kept in
``ChatRequest.unknown`` under its path (``messages.1.content.0.foo``; ``field_paths.py``) and
judged per model like a top-level one; ``prompt_cache_breakpoint`` on a part is ignored.
``n`` above 1 is rejected: the canonical response carries one choice. ``max_completion_tokens``
is the canonical ``params["max_tokens"]`` (``max_tokens_name`` records which name was used).
User content parts ``input_audio`` and ``file`` are validated and passed through; provider
adapters that cannot send them must raise ``UnsupportedParameter``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.types import ChatRequest, ChatResponse, NativeRequest, StreamDelta, Usage
from modelmix.wire.openai_chat.vocabulary import ERROR_TYPES as _ERROR_TYPES

__all__ = [
    "ChatStreamRenderer",
    "parse_chat_request",
    "render_chat_response",
    "render_error",
]

_IGNORED_KEYS = frozenset(
    {
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "prediction",
    }
)
_REJECTED_KEYS: dict[str, str] = {
    "audio": "audio output is not supported by this gateway",
    "web_search_options": "built-in web search is not supported by this gateway",
    "moderation": "OpenAI moderation is not supported by this gateway",
    "functions": "'functions' is deprecated and not supported; use 'tools'",
    "function_call": "'function_call' is deprecated and not supported; use 'tool_choice'",
}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_AUDIO_FORMATS = frozenset({"wav", "mp3"})
_IMAGE_DETAILS = frozenset({"auto", "low", "high", "original"})


# --------------------------------------------------------------------------- validation helpers


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _bad_type(param: str, expected: str, value: object) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _bad_value(param: str, message: str) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Invalid value for '{param}': {message}",
        param=param,
        code="invalid_value",
    )


def _missing(param: str) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _unsupported(param: str, message: str) -> GatewayError:
    return GatewayError("invalid_request", message, param=param, code="unsupported_parameter")


def _str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise _bad_type(param, "a string", value)
    return value


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise _bad_type(param, "a boolean", value)
    return value


def _int(value: object, param: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # OpenAI accepts integral floats such as 100.0 for integer parameters.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _bad_type(param, "an integer", value)
    if lo is not None and value < lo:
        raise GatewayError(
            "invalid_request",
            f"Invalid '{param}': integer below minimum value. "
            f"Expected a value >= {lo}, but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if hi is not None and value > hi:
        raise GatewayError(
            "invalid_request",
            f"Invalid '{param}': integer above maximum value. "
            f"Expected a value <= {hi}, but got {value} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return value


def _number(value: object, param: str, lo: float, hi: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type(param, "a decimal", value)
    if value < lo:
        raise GatewayError(
            "invalid_request",
            f"Invalid '{param}': decimal below minimum value. "
            f"Expected a value >= {lo:g}, but got {value} instead.",
            param=param,
            code="decimal_below_min_value",
        )
    if value > hi:
        raise GatewayError(
            "invalid_request",
            f"Invalid '{param}': decimal above maximum value. "
            f"Expected a value <= {hi:g}, but got {value} instead.",
            param=param,
            code="decimal_above_max_value",
        )
    return value


def _obj(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_type(param, "an object", value)
    return value


def _list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad_type(param, "an array", value)
    return value


def _empty_array(param: str) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


# ------------------------------------------------------------------------------ content parts


def _text_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if "text" not in part:
        raise _missing(f"{param}.text")
    return {"type": "text", "text": _str(part["text"], f"{param}.text")}


def _image_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if "image_url" not in part:
        raise _missing(f"{param}.image_url")
    image = _obj(part["image_url"], f"{param}.image_url")
    if "url" not in image:
        raise _missing(f"{param}.image_url.url")
    out: dict[str, Any] = {"url": _str(image["url"], f"{param}.image_url.url")}
    detail = image.get("detail")
    if detail is not None:
        if detail not in _IMAGE_DETAILS:
            raise _bad_value(
                f"{param}.image_url.detail", "expected one of 'auto', 'low', 'high' or 'original'."
            )
        out["detail"] = detail
    return {"type": "image_url", "image_url": out}


def _audio_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if "input_audio" not in part:
        raise _missing(f"{param}.input_audio")
    audio = _obj(part["input_audio"], f"{param}.input_audio")
    data = _str(audio.get("data"), f"{param}.input_audio.data")
    fmt = audio.get("format")
    if fmt not in _AUDIO_FORMATS:
        raise _bad_value(f"{param}.input_audio.format", "expected one of 'wav' or 'mp3'.")
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if "file" not in part:
        raise _missing(f"{param}.file")
    file = _obj(part["file"], f"{param}.file")
    out: dict[str, Any] = {}
    for key in ("file_data", "file_id", "filename"):
        value = file.get(key)
        if value is not None:
            out[key] = _str(value, f"{param}.file.{key}")
    if "file_data" not in out and "file_id" not in out:
        raise _missing(f"{param}.file.file_data")
    return {"type": "file", "file": out}


_USER_PARTS = {
    "text": _text_part,
    "image_url": _image_part,
    "input_audio": _audio_part,
    "file": _file_part,
}


def _dotted(param: str) -> str:
    """``messages[1].content[0]`` -> ``messages.1.content.0`` (the path of an unknown field)."""
    return param.replace("[", ".").replace("]", "")


def _extra_keys(
    obj: dict[str, Any], known: frozenset[str], param: str, extra: dict[str, Any]
) -> None:
    """Keys of ``obj`` beyond ``known`` with a value (null, ``[]`` and ``{}`` are a client
    library's defaults: ignored) go to ``extra`` by path, for wire/extensions.py to judge."""
    for key, value in obj.items():
        if key not in known and value is not None and value != [] and value != {}:
            extra[f"{_dotted(param)}.{key}"] = value


def _content(
    value: object,
    param: str,
    allowed: tuple[str, ...],
    extra: dict[str, Any],
    *,
    nullable: bool = False,
) -> str | list[dict[str, Any]] | None:
    """Validate message content: a string or a non-empty list of parts of ``allowed`` types
    (their unknown keys go to ``extra``)."""
    if isinstance(value, str):
        return value
    if value is None and nullable:
        return None
    if not isinstance(value, list):
        raise _bad_type(param, "one of a string or array of objects", value)
    if not value:
        raise _empty_array(param)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(value):
        p = f"{param}[{i}]"
        part = _obj(part, p)
        kind = part.get("type")
        if kind not in allowed:
            if not isinstance(kind, str):
                raise (
                    _missing(f"{p}.type")
                    if kind is None
                    else _bad_type(f"{p}.type", "a string", kind)
                )
            expected = ", ".join(f"'{a}'" for a in allowed)
            raise _bad_value(
                f"{p}.type",
                f"'{kind}' is not a supported content part type here. Supported values are: "
                f"{expected}.",
            )
        if kind == "refusal":
            parts.append({"type": "refusal", "refusal": _str(part.get("refusal"), f"{p}.refusal")})
        else:
            parts.append(_USER_PARTS[kind](part, p))
        if len(part) > 2:  # every part type has two keys: "type" and its own
            _extra_keys(part, _PART_KEYS, p, extra)
    return parts


# ---------------------------------------------------------------------------------- messages

#: Keys a content part may carry (with its type's own key) that are not unknown fields.
_PART_KEYS = frozenset(
    {"type", "text", "refusal", *_USER_PARTS, "prompt_cache_breakpoint"}  # last: a hint, ignored
)
_CALL_KEYS = frozenset({"id", "type", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
_TEXT_ONLY = ("text",)
_USER_ALLOWED = ("text", "image_url", "input_audio", "file")
_ASSISTANT_ALLOWED = ("text", "refusal")
#: Assistant-history fields we cannot translate, tolerated when null (some clients echo them).
_MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _tool_calls(value: object, param: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    calls = _list(value, param)
    out: list[dict[str, Any]] = []
    for i, call in enumerate(calls):
        p = f"{param}[{i}]"
        call = _obj(call, p)
        if "id" not in call:
            raise _missing(f"{p}.id")
        call_id = _str(call["id"], f"{p}.id")
        kind = call.get("type", "function")
        if kind != "function":
            raise _bad_value(f"{p}.type", f"'{kind}' is not supported; expected 'function'.")
        if "function" not in call:
            raise _missing(f"{p}.function")
        fn = _obj(call["function"], f"{p}.function")
        if "name" not in fn:
            raise _missing(f"{p}.function.name")
        name = _str(fn["name"], f"{p}.function.name")
        if "arguments" not in fn:
            raise _missing(f"{p}.function.arguments")
        arguments = _str(fn["arguments"], f"{p}.function.arguments")
        if len(call) > 3:
            _extra_keys(call, _CALL_KEYS, p, extra)
        if len(fn) > 2:
            _extra_keys(fn, _FUNCTION_KEYS, f"{p}.function", extra)
        out.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    return out


def _message(raw: object, i: int, extra: dict[str, Any]) -> dict[str, Any]:
    p = f"messages[{i}]"
    msg = _obj(raw, p)
    if "role" not in msg:
        raise _missing(f"{p}.role")
    role = msg["role"]
    if role not in _ROLES:
        if role == "function":
            raise _unsupported(
                f"{p}.role", "Messages with role 'function' are deprecated; use role 'tool'."
            )
        if not isinstance(role, str):
            raise _bad_type(f"{p}.role", "a string", role)
        raise _bad_value(
            f"{p}.role",
            f"'{role}' is not one of ['system', 'assistant', 'user', 'tool', 'developer'].",
        )
    allowed = _MESSAGE_KEYS[role]
    if len(msg) > 2:
        # a null or empty value is a client library's default (the SDK's model_dump of a
        # message carries refusal/annotations/audio/function_call: None): nothing asked for;
        # any other key is an unknown field, judged per model (wire/extensions.py)
        _extra_keys(msg, allowed, p, extra)
    out: dict[str, Any] = {"role": role}
    if role == "assistant":
        content = _content(
            msg.get("content"), f"{p}.content", _ASSISTANT_ALLOWED, extra, nullable=True
        )
        out["content"] = content
        calls = msg.get("tool_calls")
        if calls is not None:
            tool_calls = _tool_calls(calls, f"{p}.tool_calls", extra)
            if tool_calls:
                out["tool_calls"] = tool_calls
        if content is None and "tool_calls" not in out:
            raise _bad_type(f"{p}.content", "a string", None)
    else:
        if "content" not in msg:
            raise _missing(f"{p}.content")
        parts = _USER_ALLOWED if role == "user" else _TEXT_ONLY
        out["content"] = _content(msg["content"], f"{p}.content", parts, extra)
        if role == "tool":
            if "tool_call_id" not in msg:
                raise _missing(f"{p}.tool_call_id")
            out["tool_call_id"] = _str(msg["tool_call_id"], f"{p}.tool_call_id")
    name = msg.get("name")
    if name is not None:
        out["name"] = _str(name, f"{p}.name")
    return out


def _messages(value: object, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The validated messages; unknown keys in them (messages, parts, tool calls) go to
    ``extra`` by path (``messages.1.content.0.foo``)."""
    raw = _list(value, "messages")
    if not raw:
        raise _empty_array("messages")
    messages = [_message(m, i, extra) for i, m in enumerate(raw)]
    _check_tool_sequence(messages)
    return messages


def _check_tool_sequence(messages: list[dict[str, Any]]) -> None:
    """Tool messages must answer the tool calls of the assistant message just before them, and
    every such call must be answered (OpenAI enforces both)."""
    pending: dict[str, None] = {}
    pending_from = -1
    for i, msg in enumerate(messages):
        role = msg["role"]
        if role == "tool":
            call_id = msg["tool_call_id"]
            if call_id not in pending:
                raise GatewayError(
                    "invalid_request",
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'.",
                    param=f"messages[{i}].role",
                )
            del pending[call_id]
            continue
        if pending:
            raise _unanswered(pending_from, pending)
        if role == "assistant" and "tool_calls" in msg:
            pending = {c["id"]: None for c in msg["tool_calls"]}
            pending_from = i
    if pending:
        raise _unanswered(pending_from, pending)


def _unanswered(index: int, pending: dict[str, None]) -> GatewayError:
    ids = ", ".join(pending)
    return GatewayError(
        "invalid_request",
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        f"{ids}",
        param=f"messages[{index}].role",
    )


# ------------------------------------------------------------------------- tools and formats


def _tools(value: object) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    raw = _list(value, "tools")
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(raw):
        p = f"tools[{i}]"
        tool = _obj(tool, p)
        kind = tool.get("type")
        if kind != "function":
            if kind is None:
                raise _missing(f"{p}.type")
            raise _bad_value(f"{p}.type", f"'{kind}' is not supported; expected 'function'.")
        if "function" not in tool:
            raise _missing(f"{p}.function")
        fn = _obj(tool["function"], f"{p}.function")
        if "name" not in fn:
            raise _missing(f"{p}.function.name")
        name = _str(fn["name"], f"{p}.function.name")
        if not _NAME_RE.match(name):
            raise _bad_value(
                f"{p}.function.name",
                f"string does not match pattern. Expected a string that matches the pattern "
                f"'^[a-zA-Z0-9_-]{{1,64}}$', but got '{name}' instead.",
            )
        if name in seen:
            raise _bad_value(f"{p}.function.name", f"duplicate tool name '{name}'.")
        seen.add(name)
        fn_out: dict[str, Any] = {"name": name}
        description = fn.get("description")
        if description is not None:
            fn_out["description"] = _str(description, f"{p}.function.description")
        parameters = fn.get("parameters")
        if parameters is not None:
            fn_out["parameters"] = _obj(parameters, f"{p}.function.parameters")
        strict = fn.get("strict")
        if strict is not None:
            fn_out["strict"] = _bool(strict, f"{p}.function.strict")
        tools.append({"type": "function", "function": fn_out})
    return tools or None


def _tool_choice(value: object, tools: list[dict[str, Any]] | None) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise _bad_value("tool_choice", "expected one of 'none', 'auto' or 'required'.")
        if tools is None:
            if value == "required":
                raise _bad_value(
                    "tool_choice", "'required' is only allowed when 'tools' are specified."
                )
            return None
        return value
    choice = _obj(value, "tool_choice")
    kind = choice.get("type")
    if kind != "function":
        raise _bad_value("tool_choice.type", f"'{kind}' is not supported; expected 'function'.")
    if "function" not in choice:
        raise _missing("tool_choice.function")
    fn = _obj(choice["function"], "tool_choice.function")
    if "name" not in fn:
        raise _missing("tool_choice.function.name")
    name = _str(fn["name"], "tool_choice.function.name")
    if tools is None or all(t["function"]["name"] != name for t in tools):
        raise _bad_value(
            "tool_choice.function.name", f"no function named '{name}' was specified in 'tools'."
        )
    return {"type": "function", "function": {"name": name}}


def _response_format(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    fmt = _obj(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if "json_schema" not in fmt:
            raise _missing("response_format.json_schema")
        js = _obj(fmt["json_schema"], "response_format.json_schema")
        if "name" not in js:
            raise _missing("response_format.json_schema.name")
        name = _str(js["name"], "response_format.json_schema.name")
        if not _NAME_RE.match(name):
            raise _bad_value(
                "response_format.json_schema.name",
                "expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            )
        if "schema" not in js:
            raise _missing("response_format.json_schema.schema")
        out: dict[str, Any] = {
            "name": name,
            "schema": _obj(js["schema"], "response_format.json_schema.schema"),
        }
        if js.get("strict") is not None:
            out["strict"] = _bool(js["strict"], "response_format.json_schema.strict")
        if js.get("description") is not None:
            out["description"] = _str(js["description"], "response_format.json_schema.description")
        return {"type": "json_schema", "json_schema": out}
    if kind is None:
        raise _missing("response_format.type")
    raise _bad_value(
        "response_format.type", "expected one of 'text', 'json_object' or 'json_schema'."
    )


def _stop(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    stops = _list(value, "stop")
    if len(stops) > 4:
        raise _bad_value("stop", "expected at most 4 stop sequences.")
    return [_str(s, f"stop[{i}]") for i, s in enumerate(stops)] or None


def _metadata(value: object) -> dict[str, str]:
    meta = _obj(value, "metadata")
    if len(meta) > 16:
        raise _bad_value("metadata", "expected at most 16 keys.")
    for key, item in meta.items():
        if len(key) > 64:
            raise _bad_value("metadata", f"key '{key[:64]}...' is longer than 64 characters.")
        _str(item, f"metadata.{key}")
        if len(item) > 512:
            raise _bad_value(f"metadata.{key}", "value is longer than 512 characters.")
    return meta


# ------------------------------------------------------------------------------------ request

_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "response_format",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "n",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "metadata",
        "modalities",
        "logit_bias",
    }
)


def parse_chat_request(body: object) -> ChatRequest:
    """Validate an OpenAI ``/v1/chat/completions`` body and translate it to a ``ChatRequest``.

    Raises ``GatewayError("invalid_request", ..., param=...)`` with OpenAI's param paths.
    """
    if not isinstance(body, dict):
        raise GatewayError(
            "invalid_request",
            f"The request body must be a JSON object, but got {_type_name(body)} instead.",
        )
    unknown: dict[str, Any] | None = None
    for key, value in body.items():
        if key in _HANDLED or key in _IGNORED_KEYS or value is None:
            continue
        reason = _REJECTED_KEYS.get(key)
        if reason is not None:
            raise _unsupported(key, f"Unsupported parameter: '{key}': {reason}.")
        if unknown is None:
            unknown = {}
        unknown[key] = value  # wire/extensions.py decides, per model

    if "model" not in body:
        raise _missing("model")
    model = _str(body["model"], "model")
    if not model:
        raise _bad_value("model", "expected a non-empty model name.")
    if "messages" not in body:
        raise _missing("messages")
    nested: dict[str, Any] = {}
    messages = _messages(body["messages"], nested)
    if nested:
        unknown = nested if unknown is None else {**unknown, **nested}

    get = body.get
    stream = get("stream")
    stream = False if stream is None else _bool(stream, "stream")
    include_usage = False
    options = get("stream_options")
    if options is not None:
        if not stream:
            raise _bad_value(
                "stream_options", "'stream_options' is only allowed when 'stream' is enabled."
            )
        opts = _obj(options, "stream_options")
        if opts.get("include_usage") is not None:
            include_usage = _bool(opts["include_usage"], "stream_options.include_usage")

    modalities = get("modalities")
    if modalities is not None:
        for i, m in enumerate(_list(modalities, "modalities")):
            if _str(m, f"modalities[{i}]") != "text":
                raise _unsupported(
                    "modalities", f"Unsupported value '{m}' in 'modalities': only 'text' output."
                )
    logit_bias = get("logit_bias")
    if logit_bias is not None and _obj(logit_bias, "logit_bias"):
        if unknown is None:
            unknown = {}
        unknown["logit_bias"] = logit_bias  # OpenAI's; another format may refuse it

    tools = _tools(get("tools"))
    tool_choice = _tool_choice(get("tool_choice"), tools)
    response_format = _response_format(get("response_format"))

    params: dict[str, Any] = {}
    max_tokens = get("max_tokens")
    max_completion = get("max_completion_tokens")
    if max_completion is not None:
        params["max_tokens"] = _int(max_completion, "max_completion_tokens", lo=1)
        if max_tokens is not None and _int(max_tokens, "max_tokens", lo=1) != params["max_tokens"]:
            raise _bad_value(
                "max_tokens", "set only one of 'max_tokens' and 'max_completion_tokens'."
            )
    elif max_tokens is not None:
        params["max_tokens"] = _int(max_tokens, "max_tokens", lo=1)
    if (v := get("temperature")) is not None:
        params["temperature"] = _number(v, "temperature", 0, 2)
    if (v := get("top_p")) is not None:
        params["top_p"] = _number(v, "top_p", 0, 1)
    if (v := get("top_k")) is not None:
        params["top_k"] = _int(v, "top_k", lo=1)
    if (v := get("stop")) is not None and (stop := _stop(v)) is not None:
        params["stop"] = stop
    if (v := get("seed")) is not None:
        params["seed"] = _int(v, "seed")
    if (v := get("presence_penalty")) is not None:
        params["presence_penalty"] = _number(v, "presence_penalty", -2, 2)
    if (v := get("frequency_penalty")) is not None:
        params["frequency_penalty"] = _number(v, "frequency_penalty", -2, 2)
    logprobs = get("logprobs")
    if logprobs is not None:
        params["logprobs"] = _bool(logprobs, "logprobs")
    if (v := get("top_logprobs")) is not None:
        params["top_logprobs"] = _int(v, "top_logprobs", lo=0, hi=20)
        if not logprobs:
            raise _bad_value(
                "top_logprobs", "'logprobs' must be set to true to use 'top_logprobs'."
            )
    if (v := get("n")) is not None and _int(v, "n", lo=1, hi=128) > 1:
        raise _unsupported("n", "Unsupported value: 'n' above 1 is not supported by this gateway.")
    if (v := get("parallel_tool_calls")) is not None:
        params["parallel_tool_calls"] = _bool(v, "parallel_tool_calls")
    if (v := get("user")) is not None:
        params["user"] = _str(v, "user")
    if (v := get("reasoning_effort")) is not None:
        if v not in _REASONING_EFFORTS:
            raise _bad_value(
                "reasoning_effort",
                "expected one of 'none', 'minimal', 'low', 'medium', 'high', 'xhigh' or 'max'.",
            )
        params["reasoning_effort"] = v
    metadata = get("metadata")

    return ChatRequest(
        max_tokens_name="max_completion_tokens" if max_completion is not None else "max_tokens",
        model=model,
        messages=messages,
        stream=stream,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
        params=params,
        include_usage=include_usage,
        metadata=dict(_metadata(metadata)) if metadata is not None else {},
        unknown=unknown,
        native=NativeRequest("openai", body) if unknown is not None else None,
    )


# ---------------------------------------------------------------------------------- responses


def _completion_id(raw: str) -> str:
    return raw if raw.startswith("chatcmpl-") else f"chatcmpl-{raw}"


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def render_chat_response(resp: ChatResponse, *, model: str) -> bytes:
    """A ``chat.completion`` object; ``model`` is the name the client asked for."""
    message: dict[str, Any] = {"role": "assistant", "content": resp.content, "refusal": None}
    if resp.tool_calls:
        message["tool_calls"] = [
            {
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            }
            for tc in resp.tool_calls
        ]
    return orjson.dumps(
        {
            "id": _completion_id(resp.id),
            "object": "chat.completion",
            # Anthropic and Gemini answers carry no creation time: it is now.
            "created": resp.created or int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": resp.finish_reason,
                    "logprobs": resp.logprobs,
                }
            ],
            "usage": _usage(resp.usage),
            "system_fingerprint": resp.system_fingerprint,
        }
    )


class ChatStreamRenderer:
    """Renders canonical deltas as OpenAI ``chat.completion.chunk`` SSE frames.

    Every chunk carries the same ``id``/``created``/``model``; the first one carries
    ``delta.role``. With ``include_usage``, every chunk has ``"usage": null`` and ``end()`` sends
    one last chunk with ``choices: []`` and the usage (only if the upstream reported usage).
    """

    __slots__ = (
        "_head",
        "_include_usage",
        "_started",
        "_text_head",
        "_text_tail",
        "_tool_ids",
        "_usage",
    )

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        # The common prefix of every chunk, pre-serialised once.
        head = orjson.dumps(
            {
                "id": _completion_id(id),
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
        )
        self._head = b"data: " + head[:-1] + b","
        # The common case, a chunk of text after the first: two constant pieces around it.
        self._text_head = self._head + b'"choices":[{"index":0,"delta":{"content":'
        self._text_tail = b'},"logprobs":null,"finish_reason":null}]' + (
            b',"usage":null}\n\n' if include_usage else b"}\n\n"
        )
        self._include_usage = include_usage
        self._started = False
        self._tool_ids: set[int] = set()
        self._usage: Usage | None = None

    def _frame(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> bytes:
        tail: dict[str, Any] = {"choices": choices}
        if self._include_usage:
            tail["usage"] = usage
        return self._head + orjson.dumps(tail)[1:] + b"\n\n"

    def delta(self, d: StreamDelta) -> bytes:
        if d.usage is not None:
            self._usage = d.usage
        if (
            self._started
            and d.content
            and d.tool_calls is None
            and d.finish_reason is None
            and d.logprobs is None
        ):
            return self._text_head + orjson.dumps(d.content) + self._text_tail
        delta: dict[str, Any] = {}
        if not self._started:
            delta["role"] = "assistant"
        if d.content:
            delta["content"] = d.content
        if d.tool_calls:
            calls: list[dict[str, Any]] = []
            for tc in d.tool_calls:
                call: dict[str, Any] = {"index": tc.index}
                fn: dict[str, Any] = {}
                if tc.index not in self._tool_ids:
                    self._tool_ids.add(tc.index)
                    call["id"] = tc.id if tc.id is not None else f"call_{tc.index}"
                    call["type"] = "function"
                    fn["name"] = tc.name or ""
                elif tc.name:
                    fn["name"] = tc.name
                fn["arguments"] = tc.arguments
                call["function"] = fn
                calls.append(call)
            delta["tool_calls"] = calls
        has_body = len(delta) > (0 if self._started else 1)
        if not has_body and d.finish_reason is None and d.logprobs is None:
            return b""
        if not self._started:
            self._started = True
            if "content" not in delta and "tool_calls" not in delta:
                delta["content"] = ""
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": d.logprobs,
            "finish_reason": d.finish_reason,
        }
        return self._frame([choice], None)

    def end(self) -> bytes:
        out = b""
        if self._include_usage and self._usage is not None:
            out = self._frame([], _usage(self._usage))
        return out + b"data: [DONE]\n\n"

    def error(self, err: GatewayError) -> bytes:
        return b"data: " + orjson.dumps({"error": _error_object(err)}) + b"\n\n"


# ------------------------------------------------------------------------------------- errors


def _error_object(err: GatewayError) -> dict[str, Any]:
    kind, default_code = _ERROR_TYPES.get(err.kind, ("server_error", None))
    return {
        "message": err.message,
        "type": kind,
        "param": err.param,
        "code": err.code if err.code is not None else default_code,
    }


def render_error(err: GatewayError) -> bytes:
    """The JSON body of an OpenAI error response (send it with ``err.status``)."""
    return orjson.dumps({"error": _error_object(err)})
