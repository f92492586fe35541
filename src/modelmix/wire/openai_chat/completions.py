"""OpenAI legacy Completions (``POST /v1/completions``): a client codec over chat.

The prompt (a string, or a list of one string) becomes one user message; the answer goes back
as a ``text_completion`` (JSON or SSE chunks, ``data: [DONE]`` at the end). Every upstream
serves it through the canonical chat request, so routing, budgets and the ledger apply as for
chat. What chat cannot mean is refused with a 400 naming the parameter: ``echo``, ``suffix``,
``best_of`` > 1, ``logprobs``, several prompts, token-id prompts. Pure, no I/O.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.types import ChatRequest, ChatResponse, StreamDelta
from modelmix.wire.openai_chat.client import ChatStreamRenderer, parse_chat_request
from modelmix.wire.openai_chat.client import _usage as usage_object

__all__ = ["CompletionStreamRenderer", "parse_completion_request", "render_completion_response"]

#: Passed on to the chat parser as they are (same names and meanings).
_SHARED = (
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "metadata",
)
#: Legacy-only parameters whose default (or null) value means nothing to refuse.
_REFUSED_UNLESS_DEFAULT: dict[str, tuple[object, ...]] = {
    "echo": (None, False),
    "suffix": (None, ""),
    "best_of": (None, 1),
    "logprobs": (None, 0),
}


def _invalid(message: str, param: str, code: str | None = None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param, code=code)


def _prompt(value: object) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) > 1:
        raise _invalid(
            "This gateway serves one prompt per request: send a string or a list of one.",
            "prompt",
            "unsupported_parameter",
        )
    raise _invalid(
        "'prompt' must be a string or a list of one string (token arrays are not supported).",
        "prompt",
    )


def parse_completion_request(body: object) -> ChatRequest:
    """Validate a ``/v1/completions`` body and translate it to a chat request."""
    if not isinstance(body, dict):
        raise GatewayError("invalid_request", "The request body must be a JSON object.")
    chat: dict[str, Any] = {}
    for key, value in body.items():
        if key in _SHARED:
            chat[key] = value
        elif key in _REFUSED_UNLESS_DEFAULT:
            if value not in _REFUSED_UNLESS_DEFAULT[key]:
                raise _invalid(
                    f"Unsupported parameter: '{key}' is not supported by this gateway "
                    "(completions are served by chat models).",
                    key,
                    "unsupported_parameter",
                )
        elif key != "prompt":
            raise _invalid(
                f"Unrecognized request argument supplied: {key}", key, "unknown_parameter"
            )
    if "prompt" not in body:
        raise _invalid(
            "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
        )
    chat["messages"] = [{"role": "user", "content": _prompt(body["prompt"])}]
    return parse_chat_request(chat)


def _id(raw: str) -> str:
    return raw if raw.startswith("cmpl-") else f"cmpl-{raw}"


def render_completion_response(resp: ChatResponse, *, model: str) -> bytes:
    """A ``text_completion`` object; ``model`` is the name the client asked for."""
    choice = {
        "text": resp.content or "",
        "index": 0,
        "logprobs": None,
        "finish_reason": resp.finish_reason,
    }
    return orjson.dumps(
        {
            "id": _id(resp.id),
            "object": "text_completion",
            "created": resp.created or int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage_object(resp.usage),
            "system_fingerprint": resp.system_fingerprint,
        }
    )


class CompletionStreamRenderer(ChatStreamRenderer):
    """Canonical deltas as ``text_completion`` SSE chunks; with ``include_usage`` a last chunk
    with ``choices: []`` and the usage, then ``data: [DONE]`` (framing, usage and errors as
    the chat renderer's)."""

    __slots__ = ()

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        super().__init__(id=id, model=model, created=created, include_usage=include_usage)
        head = orjson.dumps(
            {"id": _id(id), "object": "text_completion", "created": created, "model": model}
        )
        self._head = b"data: " + head[:-1] + b","

    def delta(self, d: StreamDelta) -> bytes:
        if d.usage is not None:
            self._usage = d.usage
        if not d.content and d.finish_reason is None:
            return b""
        choice = {
            "text": d.content or "",
            "index": 0,
            "logprobs": None,
            "finish_reason": d.finish_reason,
        }
        return self._frame([choice], None)
