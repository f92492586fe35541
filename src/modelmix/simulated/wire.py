"""What every simulated wire format provides, and the pieces they share."""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from aiohttp import web

from modelmix.simulated.answers import Answer, Ask
from modelmix.types import FinishReason

#: An answer's finish (``Answer.finish``) as a canonical finish reason; each format writes that
#: with its own vocabulary table (``modelmix.wire.<format>.vocabulary``).
SIMULATED_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_call": "tool_calls",
}

#: A 200 body that is not JSON, for the ``malformed`` behaviour.
MALFORMED_BODY = b"<html><body>simulated upstream: this is not JSON</body></html>"


class RequestError(Exception):
    """The request is invalid; the wire format renders it as its own 400 error."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


class WireFormat(Protocol):
    """One vendor's API: parse its requests, render answers, errors and streams."""

    kind: str

    def stream_content_type(self, ask: Ask) -> str:
        """The Content-Type of a streamed answer."""

    def api_key(self, request: web.Request) -> str | None:
        """The API key the request carries, if any."""

    def parse(self, body: Any, request: web.Request) -> Ask:
        """The :class:`Ask` of a request body; raises :class:`RequestError` if invalid."""

    def error(self, status: int, error: RequestError | None = None) -> bytes:
        """An error body in the vendor's shape for HTTP ``status`` (its message, if given)."""

    def response(self, ask: Ask, answer: Answer) -> bytes:
        """A complete, non-streamed answer."""

    def stream(self, ask: Ask, answer: Answer) -> list[bytes]:
        """The SSE frames of a streamed answer, terminator included; each is written at once."""

    def malformed_stream(self, ask: Ask) -> list[bytes]:
        """A stream whose data is broken (for the ``malformed`` behaviour)."""


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


_PIECES = re.compile(r"\s*\S{1,12}|\s+")


def split_text(text: str) -> list[str]:
    """Stream-sized pieces of ``text`` (about a word each); joined they give ``text`` back."""
    return _PIECES.findall(text) or [text]


def fake_logprob(token: str) -> float:
    """A made-up, deterministic log probability for ``token`` (always below 0)."""
    return -0.01 - 0.1 * (len(token) % 7)


def split_arguments(arguments: str, parts: int = 3) -> list[str]:
    """``arguments`` in ``parts`` fragments (fewer if it is short); joined they give it back."""
    if len(arguments) < parts * 2:
        return [arguments]
    size = -(-len(arguments) // parts)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def text_of(content: Any) -> str:
    """The text of an OpenAI/Anthropic message content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
                elif part.get("type") == "tool_result":
                    texts.append(text_of(part.get("content")))
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return ""


#: Characters an image or other non-text part counts for in the prompt token estimate.
NON_TEXT_PART_CHARS = 340


def content_chars(content: Any) -> int:
    """Characters a message content counts for in the prompt token estimate."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
                elif part.get("type") == "tool_result":
                    total += content_chars(part.get("content"))
                elif part.get("type") in ("tool_use",):
                    total += len(str(part.get("input", "")))
                else:
                    total += NON_TEXT_PART_CHARS
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0
