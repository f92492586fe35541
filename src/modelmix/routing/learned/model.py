"""Small linear models over prompt features: numpy only, for training and for inference.

Training solves ridge regression in its dual form (``W = Xᵀ (X Xᵀ + λI)⁻¹ Y``), which is exact,
fast when there are fewer prompts than features, and fits every output (one per model) with one
solve. Quality heads regress the 0/1 score (a linear probability model, then a per-model Platt
calibration); token heads regress log(1 + completion tokens).

Inference touches only the hashed buckets present in the prompt plus the dense features: a
few hundred multiply-adds per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelmix.routing.learned.features import HASH_DIM, Features, FloatArray


@dataclass(slots=True)
class LinearHeads:
    """``K`` linear outputs over the features: ``y = b + W_hashed·x + W_dense·standardised(d)``."""

    W: FloatArray  # (N_FEATURES, K)
    b: FloatArray  # (K,)
    mu: FloatArray  # (n_dense,) dense feature means
    sd: FloatArray  # (n_dense,) dense feature scales

    def apply(self, f: Features) -> FloatArray:
        z: FloatArray = self.b + self.W[f.hashed_idx].T @ f.hashed_val
        z += self.W[HASH_DIM:].T @ ((f.dense - self.mu) / self.sd)
        return z

    def apply_matrix(self, X: FloatArray) -> FloatArray:
        Z = standardise(X, self.mu, self.sd)
        out: FloatArray = Z @ self.W + self.b
        return out


class FoldedHeads:
    """Several ``LinearHeads`` side by side, for inference: the dense features' standardising
    is folded into the weights, so one gather and one product give every output."""

    __slots__ = ("W", "b")

    def __init__(self, heads: list[LinearHeads]) -> None:
        W = np.concatenate([h.W for h in heads], axis=1).astype(np.float32)
        b = np.concatenate([h.b for h in heads]).astype(np.float32)
        mu = np.concatenate(
            [np.broadcast_to(h.mu[:, None], (len(h.mu), h.W.shape[1])) for h in heads], axis=1
        )
        sd = np.concatenate(
            [np.broadcast_to(h.sd[:, None], (len(h.sd), h.W.shape[1])) for h in heads], axis=1
        )
        dense = W[HASH_DIM:] / sd
        self.b: FloatArray = (b - (mu * dense).sum(axis=0)).astype(np.float32)
        W[HASH_DIM:] = dense
        self.W: FloatArray = np.ascontiguousarray(W)

    def apply(self, f: Features) -> FloatArray:
        out: FloatArray = self.b + f.val @ self.W.take(f.idx, axis=0)
        return out


class PairHeads:
    """Two linear outputs (two one-output ``LinearHeads``, folded as in ``FoldedHeads``)
    evaluated in plain Python over a prompt's sparse features: for two outputs this is a few
    dozen multiply-adds, cheaper than the calls, arrays and cache traffic numpy needs."""

    __slots__ = ("W", "b", "rows")

    def __init__(self, first: LinearHeads, second: LinearHeads) -> None:
        folded = FoldedHeads([first, second])
        if folded.W.shape[1] != 2:
            raise ValueError("PairHeads takes two one-output heads")
        self.rows: list[tuple[float, float]] = [
            (float(a), float(b)) for a, b in folded.W.astype(np.float64).tolist()
        ]
        self.b = (float(folded.b[0]), float(folded.b[1]))
        self.W = folded.W.astype(np.float64)

    def apply_features(self, f: Features) -> tuple[float, float]:
        """Both outputs for a long prompt's features (thousands of buckets: numpy's turn)."""
        z = f.val.astype(np.float64) @ self.W.take(f.idx, axis=0)
        return self.b[0] + float(z[0]), self.b[1] + float(z[1])

    def apply(self, idx: list[int], val: list[float]) -> tuple[float, float]:
        """Both outputs for the features ``(idx, val)`` of ``sparse_features``."""
        first, second = self.b
        rows = self.rows
        for i, v in zip(idx, val, strict=True):
            w1, w2 = rows[i]
            first += v * w1
            second += v * w2
        return first, second


def dense_stats(X: FloatArray) -> tuple[FloatArray, FloatArray]:
    d = X[:, HASH_DIM:]
    mu = d.mean(axis=0).astype(np.float32)
    sd = (d.std(axis=0) + 1e-3).astype(np.float32)
    return mu, sd


def standardise(X: FloatArray, mu: FloatArray, sd: FloatArray) -> FloatArray:
    Z = X.copy()
    Z[:, HASH_DIM:] = (Z[:, HASH_DIM:] - mu) / sd
    return Z


class RidgeSolver:
    """Dual ridge on a fixed design: the Gram matrix is computed once and reused for any
    subset of rows (cross-validation folds) and any number of outputs."""

    def __init__(self, Z: FloatArray, l2: float = 1.0) -> None:
        self.Z = Z.astype(np.float64)
        self.K = self.Z @ self.Z.T
        self.l2 = l2

    def fit(self, rows: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, intercept) for the training ``rows`` (``Y`` has a row per design row)."""
        y = np.asarray(Y, dtype=np.float64)[rows]
        b = y.mean(axis=0)
        K = self.K[np.ix_(rows, rows)]
        alpha = np.linalg.solve(K + self.l2 * np.eye(len(rows)), y - b)
        return alpha, b

    def predict(
        self, rows: np.ndarray, fitted: tuple[np.ndarray, np.ndarray], at: np.ndarray
    ) -> np.ndarray:
        alpha, b = fitted
        out: np.ndarray = self.K[np.ix_(at, rows)] @ alpha + b
        return out

    def weights(self, rows: np.ndarray, fitted: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        alpha, _ = fitted
        out: np.ndarray = self.Z[rows].T @ alpha
        return out


def fit_platt(z: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Logistic calibration ``P = sigmoid(a·z + c)`` of a score by Newton's method."""
    a, c = 1.0, 0.0
    zz = np.asarray(z, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * zz + c)))
        w = p * (1 - p) + 1e-9
        g = np.array([np.sum((p - yy) * zz), np.sum(p - yy)]) + 1e-4 * np.array([a - 1.0, c])
        h = np.array(
            [[np.sum(w * zz * zz) + 1e-4, np.sum(w * zz)], [np.sum(w * zz), np.sum(w) + 1e-4]]
        )
        step = np.linalg.solve(h, g)
        a, c = a - float(step[0]), c - float(step[1])
        if abs(step[0]) + abs(step[1]) < 1e-9:
            break
    return a, c


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 30) -> np.ndarray:
    """Weights (last one the intercept) of an L2 logistic regression on a few dense features."""
    A = np.hstack([np.asarray(X, dtype=np.float64), np.ones((len(X), 1))])
    w = np.zeros(A.shape[1])
    yy = np.asarray(y, dtype=np.float64)
    reg = l2 * np.eye(A.shape[1])
    reg[-1, -1] = 1e-8
    for _ in range(iters):
        p = sigmoid(A @ w)
        g = A.T @ (p - yy) + reg @ w
        h = (A * (p * (1 - p) + 1e-9)[:, None]).T @ A + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
