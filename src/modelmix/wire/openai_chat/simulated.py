"""OpenAI Chat Completions, as ``POST /openai/v1/chat/completions`` speaks it."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from modelmix.simulated.answers import Answer, Ask, Tool
from modelmix.simulated.wire import (
    SIMULATED_FINISH,
    RequestError,
    content_chars,
    fake_logprob,
    new_id,
    split_arguments,
    split_text,
    text_of,
)
from modelmix.wire.openai_chat.vocabulary import TYPE_FOR_STATUS, WIRE_FINISH

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FINISH = {finish: WIRE_FINISH[reason] for finish, reason in SIMULATED_FINISH.items()}
_FINGERPRINT = "fp_simulated"

#: The code and message of an error body per HTTP status (its ``type`` comes from the vocabulary).
_ERRORS: dict[int, tuple[str | None, str]] = {
    400: (None, "Invalid request."),
    401: (
        "invalid_api_key",
        "Incorrect API key provided: invalid. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    404: ("not_found", "Not found."),
    429: (
        "rate_limit_exceeded",
        "Rate limit reached for requests (simulated). Please try again in 1s.",
    ),
    500: (
        None,
        "The server had an error while processing your request. Sorry about that! (simulated)",
    ),
    503: (
        None,
        "The engine is currently overloaded, please try again later. (simulated)",
    ),
    529: (None, "The server is overloaded. (simulated)"),
}


def _missing(param: str) -> RequestError:
    return RequestError(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _invalid(param: str, message: str, code: str = "invalid_value") -> RequestError:
    return RequestError(message, param, code)


def _min_one(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(
            key,
            f"Invalid type for '{key}': expected an integer, but got {type(value).__name__}.",
            "invalid_type",
        )
    if value < 1:
        raise _invalid(
            key,
            f"Invalid '{key}': integer below minimum value. Expected a value >= 1, "
            f"but got {value} instead.",
            "integer_below_min_value",
        )
    return value


class OpenAIWire:
    kind = "openai"

    def stream_content_type(self, ask: Ask) -> str:
        return "text/event-stream; charset=utf-8"

    def api_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None

    def parse(self, body: Any, request: web.Request) -> Ask:
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("you must provide a model parameter", "model")
        messages = body.get("messages")
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list):
            raise _invalid(
                "messages",
                "Invalid type for 'messages': expected an array of objects.",
                "invalid_type",
            )
        if not messages:
            raise _invalid(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "empty_array",
            )
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            raise _invalid(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            )
        max_tokens = _min_one(body, "max_completion_tokens") or _min_one(body, "max_tokens")
        ask = Ask(model=model, stream=stream, max_tokens=max_tokens)
        ask.logprobs = body.get("logprobs") is True
        top = body.get("top_logprobs")
        if top is not None:
            if not ask.logprobs:
                raise _invalid(
                    "top_logprobs",
                    "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
                    "'top_logprobs' is used.",
                )
            if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
                raise _invalid("top_logprobs", "Invalid 'top_logprobs': expected 0 to 20.")
            ask.top_logprobs = top
        ask.include_usage = (
            isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        )
        self._read_messages(messages, ask)
        stop = body.get("stop")
        if isinstance(stop, str):
            ask.stop = [stop]
        elif isinstance(stop, list):
            ask.stop = [s for s in stop if isinstance(s, str)]
        self._read_tools(body, ask)
        self._read_format(body.get("response_format"), ask)
        return ask

    def _read_messages(self, messages: list[Any], ask: Ask) -> None:
        chars = 0
        tool_names: dict[str, str] = {}
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise _invalid(
                    f"messages[{i}]",
                    f"Invalid type for 'messages[{i}]': expected an object.",
                    "invalid_type",
                )
            role = message.get("role")
            if role is None:
                raise _missing(f"messages[{i}].role")
            if role not in _ROLES:
                raise _invalid(
                    f"messages[{i}].role",
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'tool', and 'function'.",
                )
            content = message.get("content")
            chars += content_chars(content)
            if role == "assistant":
                for call in message.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        tool_names[str(call.get("id"))] = str(function.get("name"))
                        chars += len(str(function.get("name", ""))) + len(
                            str(function.get("arguments", ""))
                        )
            elif role == "tool" and "tool_call_id" not in message:
                raise _missing(f"messages[{i}].tool_call_id")
            elif role == "user":
                ask.last_user_text = text_of(content)
        last = messages[-1]
        if last.get("role") == "tool":
            call_id = str(last.get("tool_call_id"))
            ask.tool_result = (tool_names.get(call_id, call_id), text_of(last.get("content")))
        ask.prompt_chars = chars

    def _read_tools(self, body: dict[str, Any], ask: Ask) -> None:
        tools = body.get("tools")
        choice = body.get("tool_choice")
        if tools is None:
            if choice is not None:
                raise _invalid(
                    "tool_choice",
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                    "'tools' are specified.",
                )
            return
        if not isinstance(tools, list):
            raise _invalid("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict):
                raise _missing(f"tools[{i}].function")
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise _missing(f"tools[{i}].function.name")
            parameters = function.get("parameters")
            ask.tools.append(Tool(name, parameters if isinstance(parameters, dict) else {}))
            ask.prompt_chars += len(name) + len(str(function.get("description", "")))
            ask.prompt_chars += len(orjson.dumps(parameters)) if parameters else 0
        if choice == "none":
            ask.no_tools = True
        elif isinstance(choice, dict):
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                ask.forced_tool = function["name"]
                if all(t.name != ask.forced_tool for t in ask.tools):
                    raise _invalid(
                        "tool_choice",
                        f"Invalid value for 'tool_choice': no function named "
                        f"'{ask.forced_tool}' was specified in the 'tools' parameter.",
                    )

    def _read_format(self, response_format: Any, ask: Ask) -> None:
        if not isinstance(response_format, dict):
            return
        kind = response_format.get("type")
        if kind == "json_object":
            ask.json_mode = True
        elif kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict):
                raise _missing("response_format.json_schema")
            if not isinstance(spec.get("name"), str):
                raise _missing("response_format.json_schema.name")
            schema = spec.get("schema")
            ask.json_schema = schema if isinstance(schema, dict) else {"type": "object"}
        elif kind not in ("text", None):
            raise _invalid(
                "response_format.type",
                f"Invalid value: '{kind}'. Supported values are: 'json_object', "
                "'json_schema', and 'text'.",
            )

    def error(self, status: int, error: RequestError | None = None) -> bytes:
        known = _ERRORS.get(status)
        if known is None:
            kind, code, message = "server_error", None, "Upstream error."
        else:
            kind = TYPE_FOR_STATUS.get(status, "server_error")
            code, message = known
        if error is not None:
            code, message = error.code, error.message
        return orjson.dumps(
            {
                "error": {
                    "message": message,
                    "type": kind,
                    "param": error.param if error is not None else None,
                    "code": code,
                }
            }
        )

    def response(self, ask: Ask, answer: Answer) -> bytes:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_name is not None:
            message["tool_calls"] = [
                {
                    "id": new_id("call_"),
                    "type": "function",
                    "function": {"name": answer.tool_name, "arguments": answer.tool_arguments},
                }
            ]
        return orjson.dumps(
            {
                "id": new_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": ask.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": _logprobs(ask, split_text(answer.text))
                        if ask.logprobs and answer.text is not None
                        else None,
                        "finish_reason": _FINISH[answer.finish],
                    }
                ],
                "usage": _usage(answer),
                "service_tier": "default",
                "system_fingerprint": answer.fingerprint or _FINGERPRINT,
            }
        )

    def stream(self, ask: Ask, answer: Answer) -> list[bytes]:
        base = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ask.model,
            "service_tier": "default",
            "system_fingerprint": answer.fingerprint or _FINGERPRINT,
        }
        include_usage = ask.include_usage
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

        frames: list[bytes] = []
        if answer.tool_name is not None:
            first_call = {
                "index": 0,
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": answer.tool_name, "arguments": ""},
            }
            frames.append(
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [first_call],
                        "refusal": None,
                    }
                )
            )
            for fragment in split_arguments(answer.tool_arguments):
                call = {"index": 0, "function": {"arguments": fragment}}
                frames.append(chunk({"tool_calls": [call]}))
        else:
            frames.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in split_text(answer.text or ""):
                logprobs = _logprobs(ask, [piece]) if ask.logprobs else None
                frames.append(chunk({"content": piece}, None, logprobs))
        frames.append(chunk({}, _FINISH[answer.finish]))
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": _usage(answer)}
            frames.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames

    def malformed_stream(self, ask: Ask) -> list[bytes]:
        return [
            b'data: {"id": "chatcmpl-malformed", "object": "chat.completion.chunk", "choices"\n\n',
            b"data: [DONE]\n\n",
        ]


def _logprobs(ask: Ask, tokens: list[str]) -> dict[str, Any]:
    """Deterministic, made-up log probabilities, one entry per streamed piece."""
    content = []
    for token in tokens:
        logprob = fake_logprob(token)
        top = [
            {"token": token, "logprob": logprob, "bytes": list(token.encode())},
            *(
                {"token": f"alt{i}", "logprob": logprob - i, "bytes": list(f"alt{i}".encode())}
                for i in range(1, ask.top_logprobs)
            ),
        ][: ask.top_logprobs]
        content.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": top,
            }
        )
    return {"content": content, "refusal": None}


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
