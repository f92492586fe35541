"""Decision time of the routers (no upstream calls): p50 / p99 over the shared prompts.

Run: PYTHONPATH=src python benchmarks/routing_decision.py
(``MODELMIX_ROUTING_DATA`` overrides where the shared routing data is; default
``../shared/data/routing`` from the repository root.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from modelmix.routing.cascade import CascadeStrategy, StagedCascadeStrategy
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.data import load_data, load_prices
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.types import ChatRequest

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing",
    )
)


def main() -> None:
    prices = load_prices(DATA / "models-zeroeval.json")
    data = load_data(DATA / "zeroeval-dev.jsonl", prices)
    art = load_artifact("default")
    gate = art.gate
    assert gate is not None
    routers = {
        "learned (24 models, quality_target=0.95)": LearnedStrategy(
            "r", art.models, art, quality_target=0.95
        ),
        "learned (profiles)": LearnedStrategy(
            "r", art.models, art, quality_target=0.95, profiles=art.meta["model_quality"]
        ),
        "staged cascade (first attempt, target 0.95)": StagedCascadeStrategy(
            "s", art, quality_target=0.95
        ),
        "cascade (first attempt, learned gate)": CascadeStrategy(
            "c", gate.voters, gate.strong, artifact=art, quality_target=0.98
        ),
    }
    print(f"{'router':45s} {'p50 ms':>8s} {'p99 ms':>8s} {'prompts':>8s}")
    for name, strategy in routers.items():
        times = []
        for text in data.prompts:
            req = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
            t0 = time.perf_counter()
            needs = needs_of(req)
            plan = strategy.plan(req, needs, {})
            next(plan)
            times.append((time.perf_counter() - t0) * 1000)
        a = np.array(times[50:])  # skip warm-up
        print(f"{name:45s} {np.percentile(a, 50):8.3f} {np.percentile(a, 99):8.3f} {len(a):8d}")


if __name__ == "__main__":
    main()
