"""Facts derived from one request, computed at most once each and only when asked.

Admission (budgets, token limits), ``needs_of``, the strategies and the usage estimator all
look at the same derived values: the prompt text, its cl100k token count, the images, the tool
calls and definitions, the response format. ``ChatRequest.facts`` creates one
:class:`RequestFacts` per request on first use; every property fills itself on first read, so
a request whose route needs nothing pays nothing, and one that needs the token count
tokenizes its prompt once, whoever asks first.

A request is not changed after its facts are read (``dataclasses.replace`` makes a new
request, with fresh facts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from modelmix.tokens import count_tokens

if TYPE_CHECKING:
    from modelmix.types import ChatRequest

__all__ = ["TOKENS_PER_IMAGE", "TOKENS_PER_MESSAGE", "RequestFacts", "prompt_text"]

#: Tokens a chat format adds around each message (role, separators), as OpenAI counts them.
TOKENS_PER_MESSAGE = 4
#: A flat allowance per image part.
TOKENS_PER_IMAGE = 1000


def prompt_text(messages: list[dict[str, object]]) -> str:
    """The text a router looks at: every message's text parts, joined."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    parts.append(str(part.get("text", "")))
    return "\n".join(parts)


def _scan(request: ChatRequest) -> tuple[int, int, list[str]]:
    chars = images = 0
    extra: list[str] = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if kind == "text":
                    chars += len(str(part.get("text", "")))
                elif kind == "image_url":
                    images += 1
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            name, arguments = str(fn.get("name", "")), str(fn.get("arguments", ""))
            chars += len(name) + len(arguments)
            extra.append(f"{name} {arguments}")
    if request.tools:
        chars += sum(len(str(tool)) for tool in request.tools)
    return chars, images, extra


class RequestFacts:
    """Lazily derived facts of one request (see the module docstring)."""

    __slots__ = ("_content_tokens", "_request", "_scanned", "_text", "_text_tokens")

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._scanned: tuple[int, int, list[str]] | None = None
        self._text: str | None = None
        self._text_tokens: int | None = None
        self._content_tokens: int | None = None

    def scan(self) -> tuple[int, int, list[str]]:
        """(characters of text, tool calls and tool definitions; image parts; each tool
        call's ``name arguments``), from one walk over the messages."""
        if self._scanned is None:
            self._scanned = _scan(self._request)
        return self._scanned

    @property
    def chars(self) -> int:
        """Characters of message text, tool calls and tool definitions."""
        return self.scan()[0]

    @property
    def images(self) -> int:
        """Image parts over all messages."""
        return self.scan()[1]

    @property
    def text(self) -> str:
        """``prompt_text`` of the messages: what routers featurize and tokenize."""
        if self._text is None:
            self._text = prompt_text(self._request.messages)
        return self._text

    @property
    def text_tokens(self) -> int:
        """cl100k tokens of :attr:`text`."""
        if self._text_tokens is None:
            self._text_tokens = count_tokens(self.text)
        return self._text_tokens

    @property
    def content_tokens(self) -> int:
        """cl100k tokens of the text plus tool calls and tool definitions (no overheads).

        Without tool calls or tools this is :attr:`text_tokens` (one tokenization shared with
        the router); with them, the text and their JSON are counted together."""
        if self._content_tokens is None:
            extra = self.scan()[2]
            tools = self._request.tools
            if not extra and not tools:
                self._content_tokens = self.text_tokens
            else:
                if tools:
                    extra = [*extra, orjson.dumps(tools).decode()]
                self._content_tokens = count_tokens(self.text + "\n" + "\n".join(extra))
        return self._content_tokens

    @property
    def prompt_tokens(self) -> int:
        """Exact prompt tokens for budgets and limits: :attr:`content_tokens` plus a
        per-message overhead and a flat allowance per image."""
        return (
            self.content_tokens
            + TOKENS_PER_MESSAGE * len(self._request.messages)
            + TOKENS_PER_IMAGE * self.images
        )

    @property
    def json_format(self) -> str | None:
        """The ``response_format`` type (``json_object``, ``json_schema``) or None."""
        fmt = self._request.response_format
        kind = fmt.get("type") if fmt else None
        return kind if isinstance(kind, str) else None
