"""Is a prompt like the router's training prompts? A few centroids of the training prompts'
hashed n-gram vectors, and a threshold on the best cosine similarity to them.

The threshold is measured out of fold: centroids fitted on the other folds, the similarity of
each held-back (new but in-distribution) prompt, and the ``QUANTILE`` of those. A prompt under
the threshold is unlike anything the router was calibrated on, so the learned heads cannot
promise a target for it: the route sends it to the single models that keep the target by
themselves (``safety.choose`` without the heads' settings: the safe model at a high target).

One gather over the prompt's buckets per decision (``CENTROIDS`` x its distinct n-grams).
"""

from __future__ import annotations

import numpy as np

from modelmix.routing.learned.features import HASH_DIM, Features, FloatArray

#: Centroids kept in an artifact.
CENTROIDS = 8
#: Share of new in-distribution prompts allowed under the threshold.
QUANTILE = 0.01


def fit_centroids(X: FloatArray, k: int = CENTROIDS, seed: int = 0, iters: int = 12) -> FloatArray:
    """Spherical k-means over the hashed part of a feature matrix (rows are unit vectors)."""
    H = np.asarray(X[:, :HASH_DIM], dtype=np.float32)
    n = len(H)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    C = H[rng.choice(n, size=k, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(H @ C.T, axis=1)
        for j in range(k):
            members = H[assign == j]
            if len(members):
                C[j] = members.sum(axis=0)
        C /= np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-9)
    return C


def similarity_matrix(X: FloatArray, C: FloatArray) -> np.ndarray:
    """Best cosine similarity of each row's hashed part to the centroids."""
    out: np.ndarray = np.max(np.asarray(X[:, :HASH_DIM], dtype=np.float32) @ C.T, axis=1)
    return out


def similarity(f: Features, C: FloatArray) -> float:
    """Best cosine similarity of one prompt to the centroids (its hashed values are unit)."""
    return float(np.max(C[:, f.hashed_idx] @ f.hashed_val))


def oof_threshold(X: FloatArray, fid: np.ndarray, seed: int = 0) -> float:
    """The ``QUANTILE`` of held-back prompts' similarity to centroids fitted without them."""
    sims = np.zeros(len(X))
    for f in np.unique(fid):
        tr, te = np.where(fid != f)[0], np.where(fid == f)[0]
        sims[te] = similarity_matrix(X[te], fit_centroids(X[tr], seed=seed))
    return float(np.quantile(sims, QUANTILE))
