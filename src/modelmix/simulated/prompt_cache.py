"""Simulated prompt caching, the explicit kind Anthropic offers: a ``cache_control`` breakpoint
caches the prompt up to it (tools, then system, then messages, in order); a later request whose
prompt up to one of its breakpoints is the same, byte for byte, reads that prefix from the cache.

So a gateway that changes a byte before a breakpoint (reorders keys, rewrites a block, drops a
``cache_control``) shows up as cache misses, as it would at Anthropic. A request reports what it
read (``cache_read_input_tokens``) and what it wrote (``cache_creation_input_tokens``: from the
longest hit to its last breakpoint, when that one is new).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import orjson

from modelmix.simulated.wire import content_chars

__all__ = ["PromptCache", "breakpoints"]

#: Prefixes remembered (the oldest are forgotten first).
_LIMIT = 4096


def _items(body: dict[str, Any]) -> list[tuple[Any, int]]:
    """The prompt's parts in cache order, each with the characters it counts for."""
    items: list[tuple[Any, int]] = []
    for tool in body.get("tools") or ():
        items.append((tool, len(orjson.dumps(tool))))
    system = body.get("system")
    if isinstance(system, list):
        items += [(block, content_chars([block])) for block in system]
    elif system:
        items.append((system, content_chars(system)))
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        items.append((message.get("role"), 0))
        if isinstance(content, list):
            items += [(block, content_chars([block])) for block in content]
        else:
            items.append((content, content_chars(content)))
    return items


def breakpoints(body: dict[str, Any]) -> list[tuple[bytes, int]]:
    """``(digest of the prompt up to it, characters up to it)`` per ``cache_control``."""
    digest = hashlib.sha256()
    chars = 0
    out: list[tuple[bytes, int]] = []
    for item, size in _items(body):
        digest.update(orjson.dumps(item))
        chars += size
        if isinstance(item, dict) and item.get("cache_control"):
            out.append((digest.copy().digest(), chars))
    return out


class PromptCache:
    """The prefixes one simulator has cached."""

    def __init__(self) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def use(self, points: list[tuple[bytes, int]]) -> tuple[int, int]:
        """``(characters read, characters written)`` for a request with these breakpoints."""
        read = 0
        for digest, chars in points:
            if digest in self._seen:
                read = chars
                self._seen.move_to_end(digest)
        written = 0
        if points and points[-1][0] not in self._seen:
            written = points[-1][1] - read
        for digest, _ in points:
            self._seen[digest] = None
        while len(self._seen) > _LIMIT:
            self._seen.popitem(last=False)
        return read, written
