"""The static prompt embedding (WordPiece split, mean of piece vectors) and the kNN router."""

import numpy as np
import pytest

from modelmix.routing.learned.embedding import StaticEmbedding, default_embedding
from modelmix.routing.learned.knn import KnnRouter

VOCAB = ["[UNK]", "un", "##aff", "##able", "cafe", "!", "_", "x", "run", "##ning"]


def tiny() -> StaticEmbedding:
    vectors = np.eye(len(VOCAB), dtype=np.float32)
    return StaticEmbedding(vectors, {w: i for i, w in enumerate(VOCAB)})


def test_wordpiece_greedy_longest_match_and_basic_split():
    e = tiny()
    ids = e.token_ids("UnAffable café! Running_x zzz")
    words = [VOCAB[i] for i in ids]
    # lower case, accent stripped, punctuation and "_" on their own, unknown word -> [UNK]
    assert words == ["un", "##aff", "##able", "cafe", "!", "run", "##ning", "_", "x", "[UNK]"]
    assert e.token_ids("") == []


def test_embed_is_the_unit_mean_of_piece_vectors():
    e = tiny()
    v = e.embed("run running")
    want = np.zeros(len(VOCAB), dtype=np.float32)
    want[VOCAB.index("run")] = 2
    want[VOCAB.index("##ning")] = 1
    assert v == pytest.approx(want / np.linalg.norm(want))
    assert not e.embed("").any()
    assert e.embed_many(["x", "run"]).shape == (2, len(VOCAB))


def test_shipped_embedding_loads_offline_and_separates_topics():
    e = default_embedding()
    assert e.vectors.shape[0] == len(e.vocab) > 20_000 and 32 <= e.dim <= 256
    a = e.embed("What is the derivative of x^2 + 3x with respect to x?")
    b = e.embed("Compute the integral of sin(x) from 0 to pi.")
    c = e.embed("Which treaty ended the Thirty Years' War in Europe?")
    assert float(np.linalg.norm(a)) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > float(a @ c)


def test_knn_router_picks_the_cheapest_model_its_neighbours_say_suffices():
    # Two kinds of prompt: on "easy" ones both models succeed, on "hard" only the dear one.
    emb = np.array([[1, 0]] * 10 + [[0, 1]] * 10, dtype=np.float32)
    score = np.array([[1, 1]] * 10 + [[0, 1]] * 10, dtype=np.float64)
    cost = np.tile(np.array([0.1, 1.0]), (20, 1))
    r = KnnRouter(emb, score, cost, k=5)
    assert r.choose(np.array([1, 0], dtype=np.float32), 0.95) == 0
    assert r.choose(np.array([0, 1], dtype=np.float32), 0.95) == 1
    # A blended estimate that says the cheap model fails everywhere moves "easy" to the dear one.
    assert r.choose(np.array([1, 0], dtype=np.float32), 0.95, np.array([0.0, 1.0]), 0.9) == 1


def test_cluster_router_finds_the_groups_and_picks_per_cluster():
    from modelmix.routing.learned.clusters import SHRINK, ClusterRouter

    rng = np.random.default_rng(1)
    centres = np.eye(4)[:2]  # two topics, far apart
    emb = np.vstack(
        [centres[0] + 0.05 * rng.normal(size=(60, 4)), centres[1] + 0.05 * rng.normal(size=(60, 4))]
    )
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    # model 0 is cheap and good on topic 0 only; model 1 is dear and good everywhere
    score = np.c_[np.r_[np.ones(60), np.zeros(60)], np.ones(120)]
    cost = np.c_[np.full(120, 1.0), np.full(120, 10.0)]
    r = ClusterRouter.fit(emb, score, cost, k=2)
    assert r.choose(centres[0], 0.85) == 0  # shrunk: (60 + 20 * 0.5) / 80 = 0.875
    assert r.choose(centres[1], 0.85) == 1
    assert r.choose(centres[1], 0.0) == 0  # any model reaches a zero threshold: the cheapest
    # each cluster's mean is shrunk toward the overall mean by SHRINK pseudo-prompts
    topic0 = int(np.argmax(r.centroids @ centres[0]))
    assert r.quality[topic0, 0] == pytest.approx((60 + SHRINK * 0.5) / (60 + SHRINK))
    # the same data and seed give the same clusters
    again = ClusterRouter.fit(emb, score, cost, k=2)
    assert np.allclose(again.centroids, r.centroids)
