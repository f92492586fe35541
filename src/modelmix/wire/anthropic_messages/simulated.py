"""Anthropic Messages, as ``POST /anthropic/v1/messages`` speaks it."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from aiohttp import web

from modelmix.simulated.answers import Answer, Ask, Tool, estimate_tokens, summarise
from modelmix.simulated.prompt_cache import breakpoints
from modelmix.simulated.wire import (
    SIMULATED_FINISH,
    RequestError,
    content_chars,
    new_id,
    split_arguments,
    split_text,
    text_of,
)
from modelmix.wire.anthropic_messages.vocabulary import STOP_REASON, TYPE_FOR_STATUS

#: Anthropic tells a stop sequence apart from the end of the turn; the others come from the table.
_FINISH = {finish: STOP_REASON[reason] for finish, reason in SIMULATED_FINISH.items()}
_FINISH["stop_sequence"] = "stop_sequence"

#: The message of an error body per HTTP status (its ``type`` comes from the vocabulary);
#: a status without one is an ``api_error``.
_ERRORS: dict[int, str] = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use this resource.",
    404: "Not found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed the rate limit for your organization (simulated).",
    500: "Internal server error (simulated).",
    503: "Service unavailable (simulated).",
    529: "Overloaded (simulated).",
}


#: The beta that lets a ``system`` turn appear among the messages (Claude Code sends it).
MID_CONVERSATION_SYSTEM = "mid-conversation-system"


def thinking_signature(thinking: str) -> str:
    """The simulated signature of a thinking block: a later turn must send it back unchanged
    with the same text, as Anthropic checks."""
    digest = hashlib.sha256(b"modelmix-simulated-thinking\x00" + thinking.encode()).digest()
    return base64.b64encode(digest).decode()


def _thinking_text(ask: Ask) -> str:
    return f"Simulated reasoning about: {summarise(ask.last_user_text, 12)}"


def _check_thinking(index: int, content: list[Any], last_assistant: bool, ask: Ask) -> None:
    """Signatures intact; with thinking on, the last assistant turn of a tool loop starts
    with its thinking (Anthropic refuses both otherwise)."""
    for j, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or signature != thinking_signature(text):
                raise RequestError(
                    f"messages.{index}.content.{j}: Invalid `signature` in `thinking` block"
                )
    uses_tools = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
    if ask.thinking and last_assistant and uses_tools:
        first = content[0].get("type") if isinstance(content[0], dict) else None
        if first not in ("thinking", "redacted_thinking"):
            raise RequestError(
                f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                f"but found `{first}`. When `thinking` is enabled, a final `assistant` message "
                "must start with a thinking block."
            )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicWire:
    kind = "anthropic"

    def stream_content_type(self, ask: Ask) -> str:
        return "text/event-stream; charset=utf-8"

    def api_key(self, request: web.Request) -> str | None:
        key = request.headers.get("x-api-key")
        if key is not None:
            return key.strip()
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None

    def parse(self, body: Any, request: web.Request) -> Ask:
        if "anthropic-version" not in request.headers:
            raise RequestError("anthropic-version: header is required")
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("max_tokens: Input should be greater than or equal to 1")
        messages = body.get("messages")
        if messages is None:
            raise RequestError("messages: Field required")
        if not isinstance(messages, list):
            raise RequestError("messages: Input should be a valid list")
        if not messages:
            raise RequestError("messages: at least one message is required")
        ask = Ask(model=model, max_tokens=max_tokens, stream=body.get("stream") is True)
        thinking = body.get("thinking")
        ask.thinking = isinstance(thinking, dict) and thinking.get("type") in (
            "enabled",
            "adaptive",
        )
        system_turns = MID_CONVERSATION_SYSTEM in request.headers.get("anthropic-beta", "")
        self._read_messages(messages, ask, system_turns)
        system = body.get("system")
        if system is not None:
            if not isinstance(system, str | list):
                raise RequestError("system: Input should be a valid string or list")
            ask.prompt_chars += content_chars(system)
        stop = body.get("stop_sequences")
        if stop is not None:
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise RequestError("stop_sequences: Input should be a valid list of strings")
            ask.stop = stop
        self._read_tools(body, ask)
        ask.cache_points = breakpoints(body)
        output_format = body.get("output_format")
        output_config = body.get("output_config")
        if output_format is None and isinstance(output_config, dict):
            output_format = output_config.get("format")
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
            schema = output_format.get("schema")
            ask.json_schema = schema if isinstance(schema, dict) else {"type": "object"}
        return ask

    def _read_messages(self, messages: list[Any], ask: Ask, system_turns: bool = False) -> None:
        tool_names: dict[str, str] = {}
        last_assistant = max(
            (
                i
                for i, m in enumerate(messages)
                if isinstance(m, dict) and m.get("role") == "assistant"
            ),
            default=-1,
        )
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise RequestError(f"messages.{i}: Input should be a valid dictionary")
            role = message.get("role")
            if role == "system" and system_turns:
                ask.prompt_chars += content_chars(message.get("content"))
                continue
            if role == "system":
                raise RequestError(
                    'messages: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                raise RequestError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if "content" not in message:
                raise RequestError(f"messages.{i}.content: Field required")
            content = message["content"]
            if not isinstance(content, str | list):
                raise RequestError(f"messages.{i}.content: Input should be a valid list")
            ask.prompt_chars += content_chars(content)
            if isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_use":
                        tool_names[str(block.get("id"))] = str(block.get("name"))
                if role == "assistant" and content:
                    _check_thinking(i, content, i == last_assistant, ask)
            if role == "user":
                ask.last_user_text = text_of(
                    [b for b in content if not _is_tool_result(b)]
                    if isinstance(content, list)
                    else content
                )
        last = messages[-1]
        content = last.get("content")
        if last.get("role") == "user" and isinstance(content, list):
            results = [b for b in content if _is_tool_result(b)]
            if results:
                use_id = str(results[-1].get("tool_use_id"))
                result_text = text_of(results[-1].get("content"))
                ask.tool_result = (tool_names.get(use_id, use_id), result_text)

    def _read_tools(self, body: dict[str, Any], ask: Ask) -> None:
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise RequestError("tools: Input should be a valid list")
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict):
                    raise RequestError(f"tools.{i}: Input should be a valid dictionary")
                name = tool.get("name")
                if not isinstance(name, str) or not name:
                    raise RequestError(f"tools.{i}.custom.name: Field required")
                schema = tool.get("input_schema")
                if "type" in tool and tool["type"] not in ("custom", None):
                    continue  # a server tool (web search...): nothing to call client-side
                if not isinstance(schema, dict):
                    raise RequestError(f"tools.{i}.custom.input_schema: Field required")
                ask.tools.append(Tool(name, schema))
                ask.prompt_chars += len(name) + len(str(tool.get("description", "")))
                ask.prompt_chars += len(orjson.dumps(schema))
        choice = body.get("tool_choice")
        if choice is None:
            return
        if not isinstance(choice, dict) or choice.get("type") not in (
            "auto",
            "any",
            "tool",
            "none",
        ):
            raise RequestError(
                "tool_choice: Input tag does not match any of the expected tags: "
                "'auto', 'any', 'tool', 'none'"
            )
        if choice["type"] == "none":
            ask.no_tools = True
        elif choice["type"] == "tool":
            name = choice.get("name")
            if not isinstance(name, str):
                raise RequestError("tool_choice.tool.name: Field required")
            if all(t.name != name for t in ask.tools):
                raise RequestError(f"Tool '{name}' not found in provided tools")
            ask.forced_tool = name

    def count_tokens(self, body: Any, request: web.Request) -> bytes:
        """``POST /v1/messages/count_tokens``: the prompt's tokens, as the answer would count
        them (the same estimate ``usage.input_tokens`` reports)."""
        if isinstance(body, dict) and "max_tokens" not in body:
            body = {**body, "max_tokens": 1}
        ask = self.parse(body, request)
        return orjson.dumps({"input_tokens": estimate_tokens(ask.prompt_chars)})

    def error(self, status: int, error: RequestError | None = None) -> bytes:
        message = _ERRORS.get(status)
        if message is None:
            kind, message = "api_error", "Upstream error (simulated)."
        else:
            kind = TYPE_FOR_STATUS.get(status, "api_error")
        if error is not None:
            message = error.message
        return orjson.dumps(
            {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": new_id("req_"),
            }
        )

    def response(self, ask: Ask, answer: Answer) -> bytes:
        if answer.tool_name is not None:
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": new_id("toolu_"),
                    "name": answer.tool_name,
                    "input": answer.tool_input or {},
                }
            ]
        else:
            content = [{"type": "text", "text": answer.text or ""}]
        if ask.thinking:
            text = _thinking_text(ask)
            thought = {"type": "thinking", "thinking": text, "signature": thinking_signature(text)}
            content.insert(0, thought)
        return orjson.dumps(
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": ask.model,
                "content": content,
                "stop_reason": _FINISH[answer.finish],
                "stop_sequence": answer.stop_sequence,
                "usage": _usage(answer, answer.completion_tokens, ask),
            }
        )

    def stream(self, ask: Ask, answer: Answer) -> list[bytes]:
        message: dict[str, Any] = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": ask.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(answer, 1, ask),
        }
        frames = [_event("message_start", {"type": "message_start", "message": message})]
        if answer.tool_name is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": new_id("toolu_"),
                "name": answer.tool_name,
                "input": {},
            }
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in ["", *split_arguments(answer.tool_arguments)]
            ]
        else:
            block = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": piece} for piece in split_text(answer.text or "")
            ]
        index = 0
        if ask.thinking:
            frames += _thinking_frames(_thinking_text(ask))
            index = 1
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        frames.append(_event("ping", {"type": "ping"}))
        for delta in deltas:
            frames.append(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        frames.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _FINISH[answer.finish],
                        "stop_sequence": answer.stop_sequence,
                    },
                    "usage": {"output_tokens": answer.completion_tokens},
                },
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames

    def malformed_stream(self, ask: Ask) -> list[bytes]:
        return [
            b'event: message_start\ndata: {"type": "message_start", "message": {"id": \n\n',
            b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
        ]


def _thinking_frames(text: str) -> list[bytes]:
    """A thinking block streamed as Anthropic does: its text, then its signature."""
    start = {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(text)]
    deltas.append({"type": "signature_delta", "signature": thinking_signature(text)})
    frames = [
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": start},
        )
    ]
    for delta in deltas:
        frames.append(
            _event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        )
    frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    return frames


def _is_tool_result(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_result"


def _usage(answer: Answer, output_tokens: int, ask: Ask) -> dict[str, Any]:
    """Anthropic's usage: ``input_tokens`` leaves out what was read from or written to the
    prompt cache (the ``cached<N>`` behaviour's tokens and ``cache_control`` prefixes)."""
    read = estimate_tokens(ask.cache_read_chars) if ask.cache_read_chars else 0
    written = estimate_tokens(ask.cache_write_chars) if ask.cache_write_chars else 0
    fresh = answer.prompt_tokens - answer.cached_tokens
    read, written = min(read, fresh), min(written, max(fresh - read - 1, 0))
    return {
        "input_tokens": fresh - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": answer.cached_tokens + read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
