"""A Python scorer for ``examples/evals/demo.jsonl`` (``"function": "examples.evals.demo_scorers:close_enough"``).

A scorer is ``function(answer, item)`` returning a bool, a number in [0, 1], or
``(score, detail)``. Run ``modelmix eval run`` from the repository root so ``examples`` is
importable.
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def close_enough(answer: str, item: Any) -> tuple[float, dict[str, Any]]:
    """Partial credit: 1 within 1% of the reference, 0.5 within 10%, else 0."""
    found = _NUMBER.findall(answer)
    if not found:
        return 0.0, {"error": "no number"}
    got, want = float(found[-1]), float(item.reference)
    error = abs(got - want) / max(abs(want), 1e-9)
    score = 1.0 if error <= 0.01 else 0.5 if error <= 0.10 else 0.0
    return score, {"relative_error": round(error, 4)}
