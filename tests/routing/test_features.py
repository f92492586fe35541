"""The fast featurizer gives exactly the features of a plain reading of its definition."""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from modelmix.routing.learned.features import HASH_DIM, featurize

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "routing"


def reference(text: str) -> tuple[dict[int, float], list[float]]:
    """Hashed uni- and bigrams of normalised tokens (numbers -> <nK>), sqrt counts, L2 norm;
    then the dense features, each computed the obvious way."""
    lower = text.lower()
    raw = re.findall(r"[a-z_]+|\d+|[^\sa-z_\d]", lower)
    tokens = [f"<n{min(len(t), 6)}>" if t[0].isdigit() else t for t in raw]
    counts: dict[int, float] = {}
    prev = "<s>"
    for tok in tokens:
        for gram in (tok, prev + " " + tok):
            b = zlib.crc32(gram.encode()) % HASH_DIM
            counts[b] = counts.get(b, 0.0) + 1.0
        prev = tok
    norm = math.sqrt(sum(counts.values())) or 1.0
    sparse = {b: math.sqrt(c) / norm for b, c in counts.items()}
    n_numbers = sum(1 for t in raw if t[0].isdigit())
    dense = [
        math.log1p(len(text)),
        math.log1p(len(lower.split())),
        math.log1p(text.count("\n")),
        sum(c.isdigit() for c in text) / max(len(text), 1),
        math.log1p(len(re.findall(r"\\[a-z]+|\$", lower))),
        math.log1p(len(re.findall(r"\bdef |\breturn\b|\[python\]|==|\bfor \w+ in\b", lower))),
        math.log1p(len(re.findall(r"[=+*/^<>]", lower))) / 3.0,
        math.log1p(n_numbers) - math.log1p(max(len(raw), 1)) / 2.0,
    ]
    return sparse, dense


TEXTS = [
    "",
    "   \n\n",
    "What is 12 + 30? Answer in JSON.",
    "x² alone",  # a digit that \d does not match
    "only ① here",
    "x²+y³ = 42 ① ٣٤ and 1234567 then 007",
    "def f(x):\n    return x == 2\nfor i in range(3): print(f(i))",
    "Let $x$ be \\frac{1}{2} of the total; the the the repeated repeated",
    "Ünïcödé text with ÇAPS and 12 345 ۱۲۳",
]


def _check(text: str) -> None:
    f = featurize(text)
    sparse, dense = reference(text)
    hashed = dict(zip(f.hashed_idx.tolist(), f.hashed_val.tolist(), strict=True))
    assert hashed == pytest.approx(sparse)
    assert len(f.idx) == len(set(f.idx.tolist()))
    assert f.idx[-len(dense) :].tolist() == list(range(HASH_DIM, HASH_DIM + len(dense)))
    np.testing.assert_allclose(f.dense, np.array(dense, dtype=np.float32), rtol=1e-6)


@pytest.mark.parametrize("text", TEXTS)
def test_featurize_matches_reference(text: str) -> None:
    _check(text)
    _check(text)  # the second time through the token cache


def test_featurize_matches_reference_on_shared_prompts() -> None:
    path = SHARED / "zeroeval-dev.jsonl"
    if not path.exists():
        pytest.skip("shared routing data absent")
    with path.open() as fh:
        prompts = [json.loads(line)["prompt"] for _, line in zip(range(300), fh, strict=False)]
    for text in prompts:
        _check(text)
