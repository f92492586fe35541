"""The answer-blind cascade in the routing benchmark (``routing.learned.blind_strategy``).

Its rows replay ``BlindCascadeStrategy`` (the benchmark empties every response's content for
it: only token counts are real) at each ``quality_target`` and over a sweep of its threshold
``tau``; ``blind_offers`` counts the folds whose do-no-harm choice would serve it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from modelmix.routing.learned import safety
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.blind_strategy import BlindCascadeStrategy
from modelmix.routing.strategy import Strategy

#: The answer-blind cascade's router name (it reads token counts, never answers).
BLIND = "blind-cascade"
#: Its swept thresholds (its curve).
BLIND_TAUS = tuple(round(float(x), 2) for x in np.linspace(0.0, 1.0, 26))


def blind_runs(
    artifact: RouterArtifact, targets: Sequence[float]
) -> Iterator[tuple[str, str, float | None, Strategy]]:
    """(router, knob, target, strategy) of its targets and its tau sweep (none without a gate)."""
    if artifact.blind is None:
        return
    for t in targets:
        strategy = BlindCascadeStrategy(BLIND, artifact, quality_target=t)
        yield BLIND, f"quality_target={t}", t, strategy
    for tau in BLIND_TAUS:
        yield BLIND, f"tau={tau:.2f}", None, BlindCascadeStrategy(BLIND, artifact, tau=tau)


def blind_offers(
    artifact: RouterArtifact, targets: Sequence[float], offered: dict[str, list[int]]
) -> None:
    """Whether the do-no-harm choice (``safety.choose`` over the answer-blind cascade's and
    one learned call's settings measured out of fold, against the single models) would serve
    the answer-blind cascade, per target: ``offered[target]`` counts [folds serving it, folds]."""
    if artifact.blind is None:
        return
    single = safety.singles(artifact.meta)
    mine = safety.options("blind", artifact.blind.calibration)
    learned = safety.options("learned", artifact.calibration)
    for t in targets:
        choice = safety.choose(t, [*mine, *learned], single, prompts=artifact.meta.get("prompts"))
        kinds = () if choice is None else (choice.option.kind, getattr(choice.upper, "kind", ""))
        row = offered.setdefault(f"{t:g}", [0, 0])
        row[0] += int("blind" in kinds)
        row[1] += 1
