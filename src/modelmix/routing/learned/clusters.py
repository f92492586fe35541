"""Cluster routers: per-cluster model scores over a sentence embedding.

``ClusterRouter.fit`` groups the training prompts' embeddings (unit vectors) into ``k``
clusters with spherical k-means (cosine; seeded, so the same data gives the same clusters) and
keeps each model's mean score and cost per cluster, shrunk toward the overall means by
``SHRINK`` pseudo-prompts (a small cluster says little). A new prompt goes to its most similar
centroid; the choice at a target ``t`` is the cheapest model whose cluster mean reaches ``t``
of the cluster's best mean: the per-category prior's rule with learned clusters in place of
the labelled categories. One (k x dim) product per decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelmix.routing.learned.features import FloatArray

#: Pseudo-prompts at the overall mean added to every cluster's means.
SHRINK = 20.0
#: Lloyd iterations of the spherical k-means.
ITERATIONS = 25


def spherical_kmeans(emb: FloatArray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` unit centroids of the unit rows ``emb`` (k-means++ start, cosine assignment)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(emb)))
    centres = [emb[int(rng.integers(len(emb)))]]
    for _ in range(1, k):
        d = 1.0 - np.max(emb @ np.array(centres).T, axis=1)
        d = np.maximum(d, 0.0)
        p = d / d.sum() if d.sum() > 0 else None
        centres.append(emb[int(rng.choice(len(emb), p=p))])
    c = np.array(centres, dtype=np.float64)
    for _ in range(ITERATIONS):
        label = np.argmax(emb @ c.T, axis=1)
        for j in range(k):
            members = emb[label == j]
            if len(members):
                v = members.sum(axis=0)
                c[j] = v / max(float(np.linalg.norm(v)), 1e-12)
    return c


@dataclass(slots=True)
class ClusterRouter:
    centroids: np.ndarray  # (k, dim) unit rows
    quality: np.ndarray  # (k, m) shrunk mean score per cluster and model
    cost: np.ndarray  # (k, m) shrunk mean cost per cluster and model

    @classmethod
    def fit(
        cls, emb: FloatArray, score: np.ndarray, cost: np.ndarray, k: int, seed: int = 0
    ) -> ClusterRouter:
        """Clusters of the training prompts ``emb`` with their models' ``score`` and ``cost``."""
        centroids = spherical_kmeans(emb, k, seed)
        label = np.argmax(emb @ centroids.T, axis=1)
        onehot = np.eye(len(centroids))[label]
        counts = onehot.sum(axis=0)[:, None]
        quality = (onehot.T @ score + SHRINK * score.mean(axis=0)) / (counts + SHRINK)
        mean_cost = (onehot.T @ cost + SHRINK * cost.mean(axis=0)) / (counts + SHRINK)
        return cls(centroids, quality, mean_cost)

    def choose(self, e: FloatArray, t: float) -> int:
        """The cheapest model whose cluster mean reaches ``t`` of the cluster's best."""
        c = int(np.argmax(self.centroids @ e))
        q = self.quality[c]
        ok = q >= t * q.max()
        return int(np.argmin(np.where(ok, self.cost[c], np.inf)))
