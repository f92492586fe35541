"""The semantic look-up: a new prompt answered with a *similar* recent prompt's answer.

Opt-in per route (``cache.semantic.routes``). Similarity is the cosine of the two prompts'
hashed word unigram + bigram vectors (the learned router's features, ``routing/learned/
features.py``: L2-normalised square-rooted counts in 4096 buckets), compared only between
requests with the same model, parameters, tools and message roles (``context_key``).

Honest limits: this is *lexical* similarity, not meaning. It catches the same question with a
word or two changed, extra whitespace or different casing; it misses paraphrases ("capital of
France?" vs "France's capital city?"), and a high threshold is what keeps "is X safe" from
matching "is X not safe". No embedding model runs here (nothing may be downloaded at run time);
a better vector can replace ``prompt_vector`` later without changing the rest.
"""

from __future__ import annotations

import orjson

from modelmix.request_facts import prompt_text
from modelmix.routing.learned.features import HASH_DIM, sparse_features
from modelmix.types import ChatRequest

__all__ = ["best_match", "item", "prompt_vector", "similarity"]

Vector = dict[int, float]


def prompt_vector(request: ChatRequest) -> Vector:
    idx, val = sparse_features(prompt_text(request.messages))
    return {i: v for i, v in zip(idx, val, strict=False) if i < HASH_DIM}


def similarity(a: Vector, b: Vector) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(v * b.get(i, 0.0) for i, v in a.items())


def item(vector: Vector, key: str) -> bytes:
    """What the store remembers for one prompt: its vector and its exact-cache key."""
    return orjson.dumps({"k": key, "i": list(vector), "v": list(vector.values())})


def best_match(vector: Vector, items: list[bytes], threshold: float) -> tuple[str, float] | None:
    """The exact-cache key of the most similar remembered prompt at or above ``threshold``."""
    best: tuple[str, float] | None = None
    for raw in items:
        data = orjson.loads(raw)
        score = similarity(vector, dict(zip(data["i"], data["v"], strict=True)))
        if score >= threshold and (best is None or score > best[1]):
            best = (data["k"], score)
    return best
