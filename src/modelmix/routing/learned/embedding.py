"""A static sentence embedding of prompts: all-MiniLM-L6-v2 distilled to one vector per word
piece (``scripts/distill_embedding.py``), shipped inside the package, numpy only at run time.

A prompt is split the way BERT's uncased WordPiece tokenizer splits it (lower case, accents
stripped, punctuation apart, greedy longest-match word pieces from the model's own vocabulary,
shipped in ``embed/tokenizer.json``), and its embedding is the L2-normalised mean of its pieces'
vectors. Nothing is fetched: the vectors and vocabulary load from the installed package. Word
pieces are cached per word, so a 1-2 KB prompt embeds in tens of microseconds.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

import numpy as np
import orjson

from modelmix.routing.learned.features import FloatArray

EMBED_DIR = Path(__file__).parent / "embed"
_MAX_WORD = 100
# BERT's basic split: runs of letters/digits, and each punctuation character on its own.
_WORD = re.compile(r"[^\W_]+|[^\w\s]|_")
_ACCENT_FREE = re.compile(r"[\x00-\x7f]*")


def _strip_accents(text: str) -> str:
    if _ACCENT_FREE.fullmatch(text):
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


class StaticEmbedding:
    """Word-piece vectors and the vocabulary; ``embed`` maps a text to a unit vector."""

    __slots__ = ("_pieces", "dim", "unk", "vectors", "vocab")

    def __init__(self, vectors: FloatArray, vocab: dict[str, int], unk: str = "[UNK]") -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vocab = vocab
        self.unk = vocab[unk]
        self.dim = int(self.vectors.shape[1])
        self._pieces: dict[str, tuple[int, ...]] = {}

    def word_pieces(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first WordPiece ids of one (lower-cased) word."""
        cached = self._pieces.get(word)
        if cached is not None:
            return cached
        ids: list[int] = []
        start, n = 0, len(word)
        while start < n and n <= _MAX_WORD:
            end = n
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:  # no piece matches: the whole word is unknown
                ids = []
                break
            start = end
        out = tuple(ids) if ids else (self.unk,)
        if len(self._pieces) < 200_000:
            self._pieces[word] = out
        return out

    def clear_cache(self) -> None:
        """Forget the cached word pieces (for timing a cold start)."""
        self._pieces.clear()

    def token_ids(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in _WORD.findall(_strip_accents(text.lower())):
            ids.extend(self.word_pieces(word))
        return ids

    def embed(self, text: str) -> FloatArray:
        """The unit-length mean of the text's word-piece vectors (zeros for an empty text)."""
        ids = self.token_ids(text)
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        v: FloatArray = self.vectors.take(ids, axis=0).mean(axis=0)
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def embed_many(self, texts: list[str]) -> FloatArray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed(text)
        return out


def load_embedding(directory: Path = EMBED_DIR) -> StaticEmbedding:
    """Load the shipped embedding from ``directory`` (the package's own files, never a hub)."""
    with np.load(directory / "minilm_static.npz") as z:
        vectors = z["vectors"]
    tok = orjson.loads((directory / "tokenizer.json").read_bytes())
    vocab: dict[str, int] = tok["model"]["vocab"]
    return StaticEmbedding(vectors, vocab, tok["model"].get("unk_token", "[UNK]"))


@functools.cache
def default_embedding() -> StaticEmbedding:
    """The shipped embedding, loaded once per process."""
    return load_embedding()
