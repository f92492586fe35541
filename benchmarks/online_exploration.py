"""Online exploration with guardrails (issue 15, item 4) on simulated models of known quality.

Part 1, regret (the route's plan driven by hand, sans-I/O, as the engine drives it): a fallback
route whose default ``base`` is accepted 70 % of the time explores on 5 % of 20,000 requests
between ``base`` and four candidates accepted 80 %, 60 %, 50 % and 95 % / 90 %, the last two
out of bounds: ``dear`` (95 %) is predicted to cost more than the route's ``max_cost`` and
``slow`` (90 %) has a time to first token (live estimate: 2 s) above ``max_ttft_ms: 500``.
Each answer's acceptance is drawn from its model's rate; the posteriors are refreshed from the
labels every 200 requests (the gateway refreshes from the ledger every few seconds). Thompson
sampling against uniform exploration of the same eligible arms: cumulative regret per explored
request (best eligible rate 0.80 minus the served model's rate), over 20 seeds; and the number of
explorations of the out-of-bounds models (limit violations: must be 0). Also under budget
pressure (a budget near its limit): explorations (must be 0).

Part 2, promotion (a gateway on the simulated upstream, SQLite ledger, the quality loop's own
exploration and canary checks): the route ``chat`` serves ``base`` (acceptance 0.70) and explores
``cand``: in one world ``cand`` is accepted 0.85, in the other 0.55. Clients' feedback is
written to the ledger's ``feedback`` table (as ``POST /v1/feedback`` does) with the known rate.
The table says when the exploration proposed a canary (requests served), and what the canary's
guardrails decided; in the worse world, nothing may be proposed.

Run: PYTHONPATH=src python3 benchmarks/online_exploration.py --plot docs/online-exploration.png
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelmix.adaptive.explore import Posteriors
from modelmix.adaptive.live import LiveStats
from modelmix.config import parse_config
from modelmix.gateway import Gateway
from modelmix.portfolio import build_portfolio
from modelmix.quality.policy_store import PolicyStore
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome, Router
from modelmix.types import ChatRequest, ChatResponse

RATES = {"base": 0.70, "good": 0.80, "meh": 0.60, "poor": 0.50, "dear": 0.95, "slow": 0.90}
OUT_OF_BOUNDS = ("dear", "slow")
BEST_ELIGIBLE = 0.80
REQUESTS, SHARE, REFRESH, SEEDS = 20_000, 0.05, 200, 20


def _models() -> list[dict[str, Any]]:
    out = []
    for name in RATES:
        price = "400" if name == "dear" else "2"
        out.append({"name": name, "provider": "ollama", "price": {"input": "1", "output": price}})
    return out


def _router(method: str, seed: int) -> Router:
    route = {
        "name": "chat",
        "models": ["base"],
        "adaptive": {"max_ttft_ms": 500},
        "explore": {
            "share": SHARE,
            "method": method,
            "seed": seed,
            "max_cost": 0.01,
            "candidates": list(RATES),
        },
    }
    config = parse_config({"models": _models(), "routes": [route]})
    return Router(config.routes, build_portfolio(config, {}))


def _serve(router: Router, post: Posteriors, live: LiveStats, pressure: float) -> tuple[str, bool]:
    request = ChatRequest(model="chat", messages=[{"role": "user", "content": "hi"}])
    strategy, _ = router.resolve("chat")
    decision: dict[str, Any] = {}
    plan = strategy.plan(request, needs_of(request, pressure, live, None, post), decision)
    attempt = next(plan)
    model = attempt.model
    with contextlib.suppress(StopIteration):
        plan.send(Outcome(model, response=ChatResponse(id="x", model=model, content="ok")))
    note = decision.get("explore") or {}
    return model, bool(note.get("candidate"))


def regret_run(method: str, seed: int, pressure: float = 0.0) -> dict[str, Any]:
    router = _router(method, seed)
    live = LiveStats()
    for name in RATES:
        live.seed(f"{name}#0", 2000.0 if name == "slow" else 150.0, 80.0, 0.0, 100.0)
    labels = random.Random(seed + 1000)
    post = Posteriors()
    sums: dict[tuple[str, str], list[float]] = {}
    curve, regret, explored, violations, accepted = [], 0.0, 0, 0, 0.0
    for i in range(1, REQUESTS + 1):
        model, was_explored = _serve(router, post, live, pressure)
        y = 1.0 if labels.random() < RATES[model] else 0.0
        accepted += y
        acc = sums.setdefault(("chat", model), [0.0, 0.0])
        acc[0] += y
        acc[1] += 1
        if was_explored or model != "base":
            explored += 1
            violations += model in OUT_OF_BOUNDS
        if i % (REQUESTS // 100) == 0 or i == REQUESTS:
            curve.append((i, regret))
        if i % REFRESH == 0:
            post.arms = {k: (v[0], int(v[1])) for k, v in sums.items()}
        # regret of this request's exploration slot (the default served otherwise: no regret)
        if was_explored or model != "base":
            regret += BEST_ELIGIBLE - RATES[model]
    slots = round(SHARE * REQUESTS)
    return {
        "explored": explored,
        "violations": violations,
        "regret": regret,
        "curve": curve,
        "acceptance": accepted / REQUESTS,
        "slots": slots,
    }


def part1() -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {"thompson": [], "uniform": []}
    for method, out in runs.items():
        for seed in range(SEEDS):
            out.append(regret_run(method, seed))
    print(f"## Regret: {REQUESTS} requests, share {SHARE}, {SEEDS} seeds (mean [min, max])\n")
    print(
        "| method | explored requests | regret (sum of rate lost) | regret / explored "
        "| violations | route acceptance |"
    )
    print("|---|---|---|---|---|---|")
    for method, out in runs.items():
        ex = [r["explored"] for r in out]
        rg = [r["regret"] for r in out]
        per = [r["regret"] / max(r["explored"], 1) for r in out]
        acc = [r["acceptance"] for r in out]
        print(
            f"| {method} | {statistics.mean(ex):.0f} [{min(ex)}, {max(ex)}] "
            f"| {statistics.mean(rg):.1f} [{min(rg):.1f}, {max(rg):.1f}] "
            f"| {statistics.mean(per):.3f} | {sum(r['violations'] for r in out)} "
            f"| {statistics.mean(acc):.4f} |"
        )
    squeezed = [regret_run("thompson", s, pressure=0.5)["explored"] for s in range(5)]
    print(f"\nUnder budget pressure 0.5 (5 seeds): {sum(squeezed)} explorations.\n")
    return runs


# -- part 2: promotion through the canary, on a gateway --------------------------------------


def _gateway_config(db: Path, seed: int) -> Any:
    models = [
        {
            "name": name,
            "provider": "openai",
            "model": "sim-medium",
            "base_url": "builtin:simulated",
            "price": {"input": "1", "output": "2"},
        }
        for name in ("base", "cand")
    ]
    route = {
        "name": "chat",
        "models": ["base", "cand"],
        "explore": {"share": 0.2, "min_samples": 30, "seed": seed, "canary_share": 0.3},
    }
    return parse_config(
        {
            "models": models,
            "routes": [route],
            "ledger": {"path": str(db), "flush_interval": 0.05},
            "quality": {"canary": {"min_samples": 30, "max_cost_increase": 0.5}},
        }
    )


async def world(cand_rate: float, seed: int, requests: int = 3000) -> dict[str, Any]:
    rates = {"base": 0.70, "cand": cand_rate}
    rng = random.Random(seed + 100)
    out: dict[str, Any] = {"cand_rate": cand_rate, "proposed_at": None, "verdict": None}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        async with Gateway(_gateway_config(db, seed), background=False) as gw:
            loop = gw.quality
            assert loop is not None and gw.ledger is not None
            ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            for i in range(1, requests + 1):
                res = await gw.chat(ask)
                model = res.record.final_model or "base"
                score = 1.0 if rng.random() < rates[model] else 0.0
                loop.store.add_feedback(res.record.id, None, score, None, None)
                if i % 100:
                    continue
                gw.ledger.flush()
                if out["proposed_at"] is None and await loop.check_exploration():
                    out["proposed_at"] = i
                    out["proposal"] = loop.explorer.last_proposal
                verdict = await loop.check_canary()
                if verdict is not None and verdict.action != "continue":
                    out.update(verdict=verdict.action, verdict_at=i, reasons=verdict.reasons)
                    break
            out["live_first_model"] = _first_model(db)
    return out


def _first_model(db: Path) -> str:
    with PolicyStore(db) as store:
        live = store.version("live").document["routes"]
    return str(next(r for r in live if r["name"] == "chat")["models"][0])


def part2() -> list[dict[str, Any]]:
    print("## Promotion through the canary (gateway, simulated upstream, SQLite ledger)\n")
    print(
        "| world | seed | proposed a canary at request | canary verdict | at request "
        "| default after |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for rate in (0.85, 0.55):
        for seed in range(3):
            r = asyncio.run(world(rate, seed))
            rows.append(r)
            print(
                f"| cand accepted {rate:.2f} vs base 0.70 | {seed} | {r['proposed_at'] or 'never'} "
                f"| {r['verdict'] or '-'} | {r.get('verdict_at', '-')} | {r['live_first_model']} |"
            )
    print()
    return rows


def plot(runs: dict[str, list[dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, colour in (("thompson", "tab:blue"), ("uniform", "tab:orange")):
        xs = [x for x, _ in runs[method][0]["curve"]]
        ys = [[y for _, y in r["curve"]] for r in runs[method]]
        mean = [statistics.mean(col) for col in zip(*ys, strict=True)]
        lo = [min(col) for col in zip(*ys, strict=True)]
        hi = [max(col) for col in zip(*ys, strict=True)]
        ax.plot(xs, mean, color=colour, label=f"{method} (mean of {SEEDS} seeds; band: min-max)")
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.2)
    ax.set_xlabel("requests on the route (5 % explore)")
    ax.set_ylabel("cumulative regret (acceptance lost)")
    bad = sum(r["violations"] for out in runs.values() for r in out)
    ax.set_title(f"Exploration regret, Thompson vs uniform ({bad} limit violations)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def decision_time() -> None:
    router = _router("thompson", 0)
    live = LiveStats()
    post = Posteriors({("chat", m): (50.0 * r, 50) for m, r in RATES.items()})
    times = []
    for _ in range(5000):
        t = time.process_time_ns()
        _serve(router, post, live, 0.0)
        times.append((time.process_time_ns() - t) / 1000)
    times.sort()
    print(
        f"Decision CPU time of an exploring route (plan to first attempt and back): "
        f"p50 {times[len(times) // 2]:.0f} us, p99 {times[int(len(times) * 0.99)]:.0f} us\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plot", help="write the regret plot here (PNG)")
    args = parser.parse_args()
    runs = part1()
    part2()
    decision_time()
    if args.plot:
        plot(runs, args.plot)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
