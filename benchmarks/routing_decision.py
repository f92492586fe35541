"""Decision time of the routers (no upstream calls): p50 / p99 over the shared prompts.

Run: PYTHONPATH=src python benchmarks/routing_decision.py
(``MODELMIX_ROUTING_DATA`` overrides where the shared routing data is; default
``../shared/data/routing`` from the repository root.)
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from modelmix.adaptive.explore import Posteriors
from modelmix.adaptive.live import LiveStats
from modelmix.config import parse_config
from modelmix.portfolio import build_portfolio
from modelmix.routing.cascade import CascadeStrategy, StagedCascadeStrategy
from modelmix.routing.learned.artifact import RouterArtifact, load_artifact
from modelmix.routing.learned.blind_strategy import BlindCascadeStrategy
from modelmix.routing.learned.calibrate import train_artifact
from modelmix.routing.learned.data import RoutingData, load_data, load_prices
from modelmix.routing.learned.embedding import default_embedding
from modelmix.routing.learned.knn import KnnRouter
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome, Router
from modelmix.types import ChatRequest, ChatResponse, Usage

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
        _row(name, times)
    _adaptive_rows(data, art)
    _knn_rows(data, art)
    _blind_rows(data, art)
    _unseen_row()


def _blind_rows(data: RoutingData, art: RouterArtifact) -> None:
    """The answer-blind cascade: its first attempt (the learned cheap pick), and the gate
    after the cheap call (the call's token counts -> escalate or not). The shipped artifact
    has no gate unless retrained with it: one is trained here on the shared data then."""
    blind_art = art if art.blind is not None else train_artifact(data)
    strategy = BlindCascadeStrategy("b", blind_art, quality_target=0.95)
    first, gate = [], []
    for i, text in enumerate(data.prompts):
        req = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
        t0 = time.perf_counter()
        plan = strategy.plan(req, needs_of(req), {})
        attempt = next(plan)
        t1 = time.perf_counter()
        j = blind_art.models.index(attempt.model)
        usage = Usage(int(data.prompt_tokens[i, j]), int(data.completion_tokens[i, j]))
        response = ChatResponse(id="b", model=attempt.model, content="", usage=usage)
        t2 = time.perf_counter()
        with contextlib.suppress(StopIteration):
            plan.send(Outcome(attempt.model, response=response))
        t3 = time.perf_counter()
        first.append((t1 - t0) * 1000)
        gate.append((t3 - t2) * 1000)
    _row("blind cascade (first attempt, target 0.95)", first)
    _row("blind cascade (gate after the cheap call)", gate)


def _adaptive_rows(data: RoutingData, art: RouterArtifact) -> None:
    """The learned route (24 models, profiles) wrapped by the adaptive plan (latency limits
    and the price of a second, every deployment with live estimates) and by exploration
    (issue 15): the whole first step of a route built by the config, as the engine runs it."""
    models = [
        {
            "name": m,
            "provider": "ollama",
            "price": {"input": str(p_in * 1e6), "output": str(p_out * 1e6)},
        }
        for m, (p_in, p_out) in ((m, art.prices[m]) for m in art.models)
    ]
    learned = {"quality_target": 0.95, "profiles": art.meta["model_quality"]}
    adaptive = {"max_ttft_ms": 2000, "latency_weight": 0.001}
    rows = {
        "learned + adaptive": {},
        "learned + adaptive + explore (share 0.05)": {"explore": {"share": 0.05, "seed": 1}},
        "learned + adaptive + explore (share 0.5)": {"explore": {"share": 0.5, "seed": 1}},
    }
    live = LiveStats()
    for i, m in enumerate(art.models):
        live.seed(f"{m}#0", 200.0 + 20 * i, 60.0, 0.0, 150.0)
    post = Posteriors({("r", m): (30.0 * q, 40) for m, q in art.meta["model_quality"].items()})
    for name, extra in rows.items():
        route = {"name": "r", "strategy": "learned", "models": art.models, "learned": learned}
        config = parse_config(
            {"models": models, "routes": [{**route, "adaptive": adaptive, **extra}]}
        )
        strategy, _ = Router(config.routes, build_portfolio(config, {})).resolve("r")
        times = []
        for text in data.prompts:
            req = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
            t0 = time.perf_counter()
            next(strategy.plan(req, needs_of(req, 0.0, live, None, post), {}))
            times.append((time.perf_counter() - t0) * 1000)
        _row(name, times)


def _row(name: str, times: list[float]) -> None:
    a = np.array(times[50:])  # skip warm-up
    print(f"{name:45s} {np.percentile(a, 50):8.3f} {np.percentile(a, 99):8.3f} {len(a):8d}")


def _knn_rows(data: RoutingData, art: RouterArtifact) -> None:
    """The embedding routers: embed the prompt (shipped static MiniLM), k nearest of the
    data's prompts, choose; and the same blended with the learned heads."""
    emb = default_embedding()
    router = KnnRouter(emb.embed_many(data.prompts), data.score, data.cost)
    for name, heads in (("knn (embedding, 1949 neighbours' pool)", False), ("knn+heads", True)):
        emb.clear_cache()  # cold word-piece cache: every prompt pays its own split once
        times = []
        for text in data.prompts:
            t0 = time.perf_counter()
            other = art.predict(art.featurize(text))[0] if heads else None
            router.choose(emb.embed(text), 0.95, other)
            times.append((time.perf_counter() - t0) * 1000)
        _row(name, times)


def _unseen_row() -> None:
    """A learned route whose targets carry the grouped-fold table (``shift``: trained on 57
    MMLU subjects, a 3,000-prompt subsample), timed on those prompts."""
    from modelmix.bench.routing import subsample
    from modelmix.routing.learned.calibrate import train_artifact

    prices = load_prices(DATA / "models-routellm.json")
    data = subsample(load_data(DATA / "routellm-mmlu.jsonl", prices), 3000, 0)
    art = train_artifact(data)
    assert art.shift is not None
    strategy = LearnedStrategy("r", art.models, art, quality_target=0.95)
    times = []
    for text in data.prompts:
        req = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
        t0 = time.perf_counter()
        next(strategy.plan(req, needs_of(req), {}))
        times.append((time.perf_counter() - t0) * 1000)
    _row("learned (MMLU, unseen-task targets, 0.95)", times)


if __name__ == "__main__":
    main()
