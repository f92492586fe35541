"""Deterministic embedding vectors for the simulated upstream.

The same text always gets the same unit vector (seeded by its SHA-256), so tests can compare
vectors across calls, formats and fallbacks.
"""

from __future__ import annotations

import hashlib
import math
import random

#: Dimensions of a simulated model's vectors when the request names none.
DEFAULT_DIMENSIONS = 256


def vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit vector of ``dimensions`` floats (exact as float32) derived from ``text``."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # rounded to 6 places: survives a float32 round trip closely and keeps JSON short
    return [round(x / norm, 6) for x in raw]
