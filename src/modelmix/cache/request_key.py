"""When two requests are the same, and when a request may be cached at all.

The key is a SHA-256 of the request normalised: the model asked for, the messages, tools, tool
choice, response format and every sampling parameter, as canonical JSON (sorted keys), leaving
out what does not change the answer (``user``, ``stream``, ``metadata``, tags). With
``scope: key`` the key id is part of it, so one key never sees another's answers. Fields
modelmix does not know (``ChatRequest.unknown``, top-level and nested, by path) are part of it
too when there are any: they may change the answer.

Cacheable: no ``n > 1`` (several choices), and a temperature of 0, unless the config says
``any_temperature`` or the client sends ``x-modelmix-cache: force``. An absent temperature is
the provider's default (1.0 at OpenAI and Anthropic): not cached by default either.
``x-modelmix-cache: skip`` bypasses the cache both ways.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from modelmix.types import ChatRequest

__all__ = ["HEADER", "cacheable", "context_key", "request_key"]

HEADER = "x-modelmix-cache"
_IGNORED = frozenset({"user", "stream", "stream_options", "metadata"})


def _params(request: ChatRequest) -> dict[str, Any]:
    return {k: v for k, v in request.params.items() if k not in _IGNORED}


def cacheable(request: ChatRequest, any_temperature: bool, header: str | None) -> bool:
    if header == "skip":
        return False
    n = request.params.get("n")
    if isinstance(n, int) and n > 1:
        return False
    if any_temperature or header == "force":
        return True
    temperature = request.params.get("temperature", 1.0)
    return isinstance(temperature, int | float) and temperature == 0


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_key(request: ChatRequest, scope: str | None) -> str:
    """The exact-match key (``scope``: the key id, or None when shared)."""
    parts = {
        "scope": scope,
        "model": request.model,
        "messages": request.messages,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "params": _params(request),
    }
    if request.unknown:  # absent otherwise: the keys of ordinary requests stay as they were
        parts["unknown"] = request.unknown
    return _digest(parts)


def context_key(request: ChatRequest, scope: str | None) -> str:
    """Everything but the prompt's text: requests compared by similarity share this (the same
    model, parameters, tools and message roles)."""
    return _digest(
        {
            "scope": scope,
            "model": request.model,
            "roles": [m.get("role") for m in request.messages],
            "tools": request.tools,
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "params": _params(request),
        }
    )
