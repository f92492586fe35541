"""Token counts estimated when an upstream reported none: a stream cut, or abandoned by the
client, before its usage arrived (or from a server that never sends usage in a stream).

Counts are cl100k tokens (``count_tokens``, the tokenizer routing estimates use), so they are
close for OpenAI models and an approximation for others. The prompt side is the request's
``facts.content_tokens`` (message text, tool calls and tool definitions, the same count
admission used) plus a few tokens per message; images are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelmix.request_facts import TOKENS_PER_MESSAGE
from modelmix.tokens import count_tokens
from modelmix.types import ChatRequest, StreamDelta, Usage


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
        prompt_tokens=request.facts.content_tokens + TOKENS_PER_MESSAGE * len(request.messages),
        completion_tokens=count_tokens("".join(pieces)),
    )
