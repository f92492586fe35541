"""Embedding-based routers: the k nearest labelled prompts decide.

``KnnRouter`` keeps the training prompts' embeddings (unit vectors) with each model's score and
cost on them. For a new prompt it takes the ``k`` most similar training prompts (cosine) and
estimates each model's quality and cost as their similarity-weighted means; the choice at a
target ``t`` is the cheapest model whose estimate reaches ``t`` of the best estimate (the rule
the per-category prior uses, with the neighbourhood in place of the category). ``blend`` mixes
in another per-model quality estimate (the learned heads' probabilities) with a weight.
One (n x dim) product and one partial sort per decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelmix.routing.learned.features import FloatArray

#: Neighbours per decision.
K = 32


@dataclass(slots=True)
class KnnRouter:
    emb: FloatArray  # (n, dim) unit rows
    score: np.ndarray  # (n, m)
    cost: np.ndarray  # (n, m)
    k: int = K

    def estimate(self, e: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """Similarity-weighted mean score and cost per model over the ``k`` nearest prompts."""
        sims = self.emb @ e
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        w = np.maximum(sims[top], 0.0) + 1e-3
        w /= w.sum()
        return w @ self.score[top], w @ self.cost[top]

    def choose(
        self, e: FloatArray, t: float, other: np.ndarray | None = None, weight: float = 0.5
    ) -> int:
        """The cheapest model estimated to reach ``t`` of the best estimate; ``other`` (per-model
        quality from elsewhere) is mixed in with ``weight``."""
        q, c = self.estimate(e)
        if other is not None:
            q = (1.0 - weight) * q + weight * other
        ok = q >= t * q.max()
        return int(np.argmin(np.where(ok, c, np.inf)))
