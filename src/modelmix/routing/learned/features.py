"""Prompt features for the learned router: fast, stable, numpy only.

A prompt becomes a sparse vector: hashed word unigrams and bigrams (numbers collapse to their
digit count, so ``17`` and ``42`` share a feature) in ``HASH_DIM`` buckets, plus a few dense
features of length and structure (code, LaTeX, lines). Hashing uses CRC32, which is stable across
processes (Python's ``hash`` of a string is not), so an artifact trained in one process works in
another. Featurising a 1-2 KB prompt takes well under a millisecond.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from modelmix.prompt_chunks import LONG_TEXT, ChunkMemo

#: Hash buckets for word n-grams.
HASH_DIM = 4096
#: Names of the dense features, appended after the hashed ones.
DENSE_NAMES = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_share",
    "latex",
    "code",
    "math_ops",
    "log_numbers",
)
N_FEATURES = HASH_DIM + len(DENSE_NAMES)

# (``\S`` after the first two alternatives is exactly "not space, letter, digit or _")
_TOKEN = re.compile(r"[a-z_]+|\d+|\S")
_LATEX = re.compile(r"\\[a-z]+|\$")
# The look-ahead only skips positions where no alternative can start: same matches, and
# 4x faster than letting every \b be tried at every position.
_CODE = re.compile(r"(?=[dfr\[=])(?:\bdef |\breturn\b|\[python\]|==|\bfor \w+ in\b)")
_MATH_OPS = re.compile(r"[=+*/^<>]")

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
TokenArray = npt.NDArray[np.uint32]


@dataclass(slots=True, frozen=True)
class Features:
    """One prompt's features as one sparse vector over ``N_FEATURES``: the hashed buckets
    present (value: square-rooted count, L2-normalised), then the ``len(DENSE_NAMES)`` dense
    features at ``HASH_DIM...`` (raw values; models standardise them)."""

    idx: IntArray
    val: FloatArray
    #: The distinct word tokens' hashes (CRC32 of the normalised token), sorted: what
    #: ``familiar`` compares with the training prompts' vocabulary.
    tokens: TokenArray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    @property
    def hashed_idx(self) -> IntArray:
        return self.idx[:-_N_DENSE]

    @property
    def hashed_val(self) -> FloatArray:
        return self.val[:-_N_DENSE]

    @property
    def dense(self) -> FloatArray:
        return self.val[-_N_DENSE:]

    def to_dense(self) -> FloatArray:
        out = np.zeros(N_FEATURES, dtype=np.float32)
        out[self.idx] = self.val  # indices are distinct
        return out


_N_DENSE = len(DENSE_NAMES)
_DENSE_IDX = list(range(HASH_DIM, N_FEATURES))


#: Normalised forms of number tokens, by digit count (``17`` -> ``<n2>``).
_NUMBER_FORMS = [f"<n{min(n, 6)}>" for n in range(7)]
_START_CRC = zlib.crc32(b"<s>")
_HAS_DIGIT = re.compile(r"\d")


def _digit_count(text: str) -> int:
    if text.isascii():  # ten C-level scans instead of a Python loop over every character
        return sum(map(text.count, "0123456789"))
    return sum(map(str.isdigit, text))


#: token -> (CRC32 of its normalised form, its bucket, b" " + its bytes); bounded.
_TOKEN_CACHE: dict[str, tuple[int, int, bytes]] = {}
_TOKEN_CACHE_MAX = 50_000  # ~8 MB at most; cleared when full


def _token_entry(tok: str) -> tuple[int, int, bytes]:
    norm = _NUMBER_FORMS[min(len(tok), 6)] if tok[0].isdigit() else tok
    data = norm.encode()
    crc = zlib.crc32(data)
    entry = (crc, crc % HASH_DIM, b" " + data)
    if len(_TOKEN_CACHE) >= _TOKEN_CACHE_MAX:
        _TOKEN_CACHE.clear()
    _TOKEN_CACHE[tok] = entry
    return entry


def featurize(text: str) -> Features:
    if len(text) > LONG_TEXT:
        return _featurize_long(text)
    idx, val, toks = _sparse(text)
    return Features(
        np.array(idx, dtype=np.int32),
        np.array(val, dtype=np.float32),
        np.unique(np.array(toks, dtype=np.uint32)),
    )


def sparse_features(text: str) -> tuple[list[int], list[float]]:
    """``featurize`` as plain lists (feature indices, values), for callers that need no
    numpy array (a pure-Python head over a few outputs)."""
    if len(text) > LONG_TEXT:
        f = _featurize_long(text)
        return f.idx.tolist(), f.val.tolist()
    idx, val, _toks = _sparse(text)
    return idx, val


def _grams(lower: str) -> tuple[list[int], list[int], list[str]]:
    """(unigram and bigram buckets, interleaved in the order the tokens come; the word
    tokens' hashes in order; the tokens) of a lower-cased text."""
    raw = _TOKEN.findall(lower)
    crc32 = zlib.crc32
    cache_get = _TOKEN_CACHE.get
    # The bigram's CRC continues from the previous token's
    # (crc32(a + " " + b) == crc32(" " + b, crc32(a))).
    buckets: list[int] = []
    append = buckets.append
    toks: list[int] = []
    keep = toks.append
    prev_crc = _START_CRC
    for tok in raw:
        entry = cache_get(tok) or _token_entry(tok)
        append(entry[1])
        append(crc32(entry[2], prev_crc) % HASH_DIM)
        prev_crc = entry[0]
        keep(prev_crc)
    return buckets, toks, raw


def _raw_dense(text: str, lower: str, raw: list[str]) -> tuple[int, ...]:
    """The counts the dense features come from, each a sum over a text's pieces: characters,
    words, newlines, digits, LaTeX commands, code markers, math operators, numbers, tokens."""
    if lower.isascii() and _HAS_DIGIT.search(lower) is None:
        n_numbers = digits = 0  # (in ASCII text, no \d match means no digit at all)
    else:
        n_numbers = sum(1 for t in raw if t[0].isdigit())
        digits = _digit_count(text)
    return (
        len(text),
        len(lower.split()),
        text.count("\n"),
        digits,
        len(_LATEX.findall(lower)),
        len(_CODE.findall(lower)),
        len(_MATH_OPS.findall(lower)),
        n_numbers,
        len(raw),
    )


def _dense(counts: tuple[int, ...]) -> tuple[float, ...]:
    """``DENSE_NAMES``' values from ``_raw_dense``'s counts."""
    chars, words, lines, digits, latex, code, math_ops, numbers, tokens = counts
    log1p = math.log1p
    return (
        log1p(chars),
        log1p(words),
        log1p(lines),
        digits / max(chars, 1),
        log1p(latex),
        log1p(code),
        log1p(math_ops) / 3.0,
        log1p(numbers) - log1p(max(tokens, 1)) / 2.0,
    )


def _sparse(text: str) -> tuple[list[int], list[float], list[int]]:
    """(feature indices, values, the word tokens' hashes in order)."""
    lower = text.lower()
    buckets, toks, raw = _grams(lower)
    # Sub-linear counts, L2-normalised: long prompts do not dominate by sheer size. The
    # squared norm of the square-rooted counts is the number of n-grams.
    counts = Counter(buckets)
    inv = 1.0 / math.sqrt(len(buckets)) if buckets else 1.0
    sqrt = math.sqrt
    idx = list(counts)
    idx += _DENSE_IDX
    val = [sqrt(c) * inv for c in counts.values()]
    val += _dense(_raw_dense(text, lower, raw))
    return idx, val, toks


@dataclass(slots=True, frozen=True)
class _Chunk:
    """What one chunk of a long prompt adds to its features (``prompt_chunks``)."""

    buckets: npt.NDArray[np.int16]
    counts: npt.NDArray[np.integer[Any]]
    #: The first token's entry (``_token_entry``) and its bigram's bucket after ``<s>``, the
    #: last token's CRC: the bigram across a cut is rebuilt from them. None: no token.
    first: tuple[int, int, bytes] | None
    start_bigram: int
    last_crc: int
    tokens: TokenArray
    raw: tuple[int, ...]


def _chunk(text: str) -> _Chunk:
    lower = text.lower()
    buckets, toks, raw = _grams(lower)
    counts = Counter(buckets)
    first = (_TOKEN_CACHE.get(raw[0]) or _token_entry(raw[0])) if raw else None
    return _Chunk(
        np.fromiter(counts.keys(), dtype=np.int16, count=len(counts)),  # (HASH_DIM < 2**15)
        # (a count is at most the chunk's 2 n-grams per token)
        np.fromiter(counts.values(), dtype=np.uint16 if len(raw) < 2**15 else np.int64),
        first,
        buckets[1] if buckets else 0,
        toks[-1] if toks else 0,
        np.unique(np.array(toks, dtype=np.uint32)),
        _raw_dense(text, lower, raw),
    )


#: Features of the chunks of long prompts seen last (``prompt_chunks``): an agent's next
#: turn repeats its conversation, which is featurised once. This memo and the token-count one
#: hold about 20 MiB when full (``benchmarks/agent_prompts.py``; the chunks' text is shared).
_CHUNKS: ChunkMemo[_Chunk] = ChunkMemo(_chunk, capacity=4096)


def _featurize_long(text: str) -> Features:
    """``featurize`` of a long text from its chunks' memoised counts: the same features (the
    buckets in index order rather than first-seen order)."""
    parts = _CHUNKS.map(text)
    counts = np.bincount(
        np.concatenate([p.buckets for p in parts]),
        weights=np.concatenate([p.counts for p in parts]),
        minlength=HASH_DIM,
    )
    prev: int | None = None
    for p in parts:  # the bigram across each cut, as the whole text has it
        if p.first is None:
            continue
        if prev is not None:
            counts[p.start_bigram] -= 1.0
            counts[zlib.crc32(p.first[2], prev) % HASH_DIM] += 1.0
        prev = p.last_crc
    total = float(counts.sum())
    idx = np.flatnonzero(counts)
    val = np.sqrt(counts[idx]) * (1.0 / math.sqrt(total) if total else 1.0)
    raw = tuple(sum(col) for col in zip(*(p.raw for p in parts), strict=True))
    return Features(
        np.concatenate([idx, _DENSE_IDX]).astype(np.int32),
        np.concatenate([val, _dense(raw)]).astype(np.float32),
        np.unique(np.concatenate([p.tokens for p in parts])),
    )


def feature_matrix(texts: list[str]) -> FloatArray:
    """Dense matrix (one row per text), for training."""
    out = np.zeros((len(texts), N_FEATURES), dtype=np.float32)
    for i, text in enumerate(texts):
        f = featurize(text)
        out[i, f.idx] = f.val
    return out
