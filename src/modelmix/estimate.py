"""Token counts estimated when an upstream reported none: a stream cut, or abandoned by the
client, before its usage arrived (or from a server that never sends usage in a stream).

Counts are cl100k tokens (``count_tokens``, the tokenizer routing estimates use), so they are
close for OpenAI models and an approximation for others. The prompt side counts message text,
tool calls and tool definitions plus a few tokens per message; images are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from modelmix.routing.learned.tokens import count_tokens
from modelmix.types import ChatRequest, StreamDelta, Usage

#: Tokens a chat format adds around each message (role, separators), as OpenAI counts them.
_TOKENS_PER_MESSAGE = 4


def _prompt_text(request: ChatRequest) -> str:
    parts: list[str] = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if p.get("type") == "text")
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(f"{fn.get('name', '')} {fn.get('arguments', '')}")
    if request.tools:
        parts.append(orjson.dumps(request.tools).decode())
    return "\n".join(parts)


def estimate_usage(request: ChatRequest, delivered: Iterable[list[StreamDelta]]) -> Usage:
    """The usage of a streamed call: the request's prompt and the deltas that were delivered."""
    pieces: list[str] = []
    for batch in delivered:
        for delta in batch:
            if delta.content:
                pieces.append(delta.content)
            for call in delta.tool_calls or ():
                pieces.append(f"{call.name or ''}{call.arguments}")
    return Usage(
        prompt_tokens=count_tokens(_prompt_text(request))
        + _TOKENS_PER_MESSAGE * len(request.messages),
        completion_tokens=count_tokens("".join(pieces)),
    )
