"""Long prompts derived chunk by chunk (``prompt_chunks``): the same token counts and features
as the whole text, each chunk derived once across an agent's turns."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from modelmix import tokens
from modelmix.prompt_chunks import CHUNK, LONG_TEXT, ChunkMemo, chunks
from modelmix.routing.learned import features
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.model import PairHeads
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.types import ChatRequest

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))

PIECES = [
    "def f(x):\n    return x == 2\n",
    "  \n",
    "\n\n\n",
    "\r\n",
    "Le café coûte 3,50 €. ΣΑΣ ΟΔΟΣ.\n",
    "'s 've 'll it's\n",
    "$\\frac{1}{2}$ and 12345678 + 42 = x^2\n",
    "\t indented line\n",
    "for i in range(10): print(i)\n",
    "😀 emoji \u200b zero width\n",
    "    \n",
    "trailing spaces   ",
    "\n",
]


def _random_text(seed: int, n: int) -> str:
    rng = random.Random(seed)
    words = DOCS.split()
    out: list[str] = []
    size = 0
    while size < n:
        piece = rng.choice(PIECES) if rng.random() < 0.3 else " ".join(rng.sample(words, 12))
        out.append(piece)
        size += len(piece)
    return "".join(out)


TEXTS = [
    DOCS[:60_000],
    DOCS[5_000:30_000] + "\n  \nlast line",
    *(_random_text(s, 40_000) for s in range(4)),
]


def test_chunks_cut_after_a_newline_before_a_non_space() -> None:
    for text in TEXTS:
        parts = chunks(text)
        assert "".join(parts) == text and len(parts) > 5
        for part, following in itertools.pairwise(parts):
            assert len(part) >= CHUNK and part.endswith("\n")
            assert not following[0].isspace()
    assert chunks("short\ntext") == ["short\ntext"]
    assert chunks("x" * 50_000) == ["x" * 50_000]  # no newline: one chunk


@pytest.mark.parametrize("k", range(len(TEXTS)))
def test_long_token_count_is_the_whole_texts(k: int) -> None:
    text = TEXTS[k]
    assert len(text) > LONG_TEXT
    assert tokens.count_tokens(text) == tokens._count(text)


@pytest.mark.parametrize("k", range(len(TEXTS)))
def test_long_features_are_the_whole_texts(k: int) -> None:
    text = TEXTS[k]
    long = features.featurize(text)
    idx, val, toks = features._sparse(text)  # the whole text at once
    assert dict(zip(long.idx.tolist(), long.val.tolist(), strict=True)) == dict(
        zip(idx, np.array(val, dtype=np.float32).tolist(), strict=True)
    )
    assert np.array_equal(long.tokens, np.unique(np.array(toks, dtype=np.uint32)))
    assert long.hashed_idx.max() < features.HASH_DIM
    assert features.sparse_features(text)[0] == long.idx.tolist()


def test_an_agents_next_turn_derives_only_its_new_chunks() -> None:
    system = DOCS[:50_000]
    first = system + "\nFix the failing test."
    features.featurize(first)
    tokens.count_tokens(first)
    memo, counts = features._CHUNKS, tokens._CHUNK_TOKENS
    misses = memo.misses, counts.misses
    turn = first + "\nThe test passes now; here is the diff:\n" + DOCS[50_000:53_000]
    features.featurize(turn)
    tokens.count_tokens(turn)
    new = len(chunks(turn)) - len(chunks(first)) + 1  # first's last chunk grew
    assert memo.misses - misses[0] <= new + 1
    assert counts.misses - misses[1] <= new + 1
    assert len(chunks(turn)) > 20


def test_chunk_memo_is_bounded_and_exact() -> None:
    memo: ChunkMemo[int] = ChunkMemo(len, capacity=3)
    text = _random_text(9, 30_000)
    assert sum(memo.map(text)) == len(text)
    assert len(memo) == 3 and memo.misses == len(chunks(text))
    parts = chunks(text)
    memo.get(parts[-1])
    assert memo.hits == 1 and memo.get(parts[-1] + " ") == len(parts[-1]) + 1


def test_pair_heads_on_long_features_match_the_python_sum() -> None:
    art = load_artifact("default")
    pair = PairHeads(art.difficulty, art.typical_tokens()[0])
    f = features.featurize(TEXTS[2])
    a = pair.apply(f.idx.tolist(), f.val.tolist())
    b = pair.apply_features(f)
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("profiles", [False, True])
def test_a_long_agent_prompt_routes(profiles: bool) -> None:
    art = load_artifact("default")
    kw = {"profiles": {m: 0.6 + 0.01 * i for i, m in enumerate(art.models)}} if profiles else {}
    s = LearnedStrategy("r", art.models, art, quality_target=0.95, **kw)  # type: ignore[arg-type]
    messages = [
        {"role": "system", "content": DOCS[:80_000]},
        {"role": "user", "content": "Which file defines the engine?"},
    ]
    request = ChatRequest("r", messages)
    decision: dict[str, object] = {}
    attempt = next(s.plan(request, needs_of(request), decision))
    assert attempt.model in art.models and decision["chosen"] == attempt.model
    assert decision["prompt_tokens"] == tokens._count(request.facts.text)


def test_a_long_line_without_newlines_is_one_exact_chunk() -> None:
    text = "a b " * 20_000 + "1 " * 20_000  # 120 KB: counts past 2**16 in one chunk
    assert len(chunks(text)) == 1
    long = features.featurize(text)
    idx, val, _toks = features._sparse(text)
    assert dict(zip(long.idx.tolist(), long.val.tolist(), strict=True)) == dict(
        zip(idx, np.array(val, dtype=np.float32).tolist(), strict=True)
    )
    assert tokens.count_tokens(text) == tokens._count(text)
