"""Long prompts, chunk by chunk: what a router derives from a prompt, computed once per chunk.

An agent (Claude Code, the OpenAI Agents SDK) resends its whole conversation with every turn:
a system prompt of tens of kilobytes, then every earlier message, then the new one. Routing
looks at the prompt's text (token count, hashed n-grams), so without help each turn would pay
for the whole conversation again: about 29 ms of CPU for a 100 KB prompt.

``chunks`` cuts a long text after a newline that is followed by a non-space character, at the
first such place at least ``CHUNK`` characters after the previous cut. The cuts are made left
to right, so a text that extends another (the next turn of a conversation) has the same
chunks up to the old text's last cut, and a :class:`ChunkMemo` (bounded, least recently used
first out) returns what was derived from each of them. Nothing a router derives crosses such
a cut differently from the whole text: cl100k splits its pre-tokens at a newline followed by a
non-space character, and the n-gram features' tokens never contain a newline (the bigram that
spans a cut is put back when the chunks' features are merged). Texts of at most ``LONG_TEXT``
characters are not chunked.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Generic, TypeVar

#: Texts longer than this are derived chunk by chunk (no routing data prompt is this long).
LONG_TEXT = 8192
#: A chunk's least length (a cut waits for the next newline followed by a non-space).
CHUNK = 2048

_CUT = re.compile(r"\n(?=\S)")

T = TypeVar("T")


def chunks(text: str, size: int = CHUNK) -> list[str]:
    """``text`` cut after newlines followed by a non-space character, each piece (but the
    last) at least ``size`` characters long; ``"".join(chunks(text)) == text``."""
    out: list[str] = []
    start = 0
    while len(text) - start > size:
        cut = _CUT.search(text, start + size - 1)
        if cut is None:
            break
        out.append(text[start : cut.end()])
        start = cut.end()
    out.append(text[start:])
    return out


class ChunkMemo(Generic[T]):
    """What ``derive`` gives for a chunk, for the ``capacity`` chunks used last (thread-safe).
    Keys are the chunks' text itself, so a hit is always the exact chunk."""

    def __init__(self, derive: Callable[[str], T], capacity: int) -> None:
        self._derive = derive
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, chunk: str) -> T:
        with self._lock:
            found = self._items.get(chunk)
            if found is not None:
                self._items.move_to_end(chunk)
                self.hits += 1
                return found
        value = self._derive(chunk)
        with self._lock:
            self.misses += 1
            self._items[chunk] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def map(self, text: str) -> list[T]:
        """The derived value of each of ``text``'s chunks, in order."""
        return [self.get(c) for c in _recent_chunks(text)]


@lru_cache(maxsize=16)
def _recent_chunks(text: str) -> tuple[str, ...]:
    """``chunks`` of the texts seen last: a request's token count and features cut its text
    once (the text's hash is kept by the string, so a repeat lookup is cheap)."""
    return tuple(chunks(text))
