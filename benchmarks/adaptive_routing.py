"""Adaptive routing on simulated upstreams whose speed and capacity are known (issue 15).

Latency: two models of equal quality (the simulator answers both right), ``a`` (60 ms, first in
the chain) and ``b`` (100 ms). From 3 s to 7 s ``a`` is made slow (700 ms). Requests arrive at a
steady 60 per second (open loop: a slow answer does not hold the next request back, as with
independent users) through a route with ``max_ttft_ms: 300`` and through a latency-blind route
(the same chain); the table gives p50/p95 over the run and within the slow window, the share of
``a`` while it was slow, how long the route took to move away and to come back.

Load: a self-hosted deployment ``own`` (capacity 4: the simulator queues beyond 4 in flight,
as vLLM does; 200 ms per answer; nearly free) before a paid API (100 ms, priced). Clients rise
from 1 to 12; per step: the most requests ``own`` served at once, the paid share, p95 and
failures, with ``capacity: 4`` in the config and without (capacity-blind).

Shared server (queue metrics): ``own``'s server (4 slots, 200 ms) is also busy with 2 clients
that call it directly; 4 gateway clients on the spill route with ``capacity: 4``, with the
server's vLLM gauges polled over HTTP (``queue_metrics``, every 0.1 s) or with the gateway's own
in-flight counting only (it cannot see the other clients): paid share, p50/p95, failures.

Also the routing decision time (``decision_us`` of every request, adaptive routes: p50/p99).

Run: PYTHONPATH=src python3 benchmarks/adaptive_routing.py [--plot docs/adaptive-routing.png]
(``--shared-only``: only the shared-server run)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmix.config import parse_config
from modelmix.gateway import Gateway
from modelmix.simulated import Simulator, start_simulator

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


@dataclass
class Row:
    t: float
    route: str
    model: str
    latency_ms: float
    decision_us: float
    ok: bool


def config(sim: Simulator, own_capacity: int | None, queue: bool = False) -> Any:
    url = sim.base_url("openai")
    cheap = {"input": "0.05", "output": "0.05"}
    paid = {"input": "2.5", "output": "10"}

    def model(name: str, price: dict[str, str], **kw: Any) -> dict[str, Any]:
        return {"name": name, "provider": "openai", "base_url": url, "price": price, **kw}

    models = [model("a", paid), model("b", paid), model("paid", paid)]
    qm = {"queue_metrics": {"url": "/metrics", "interval_s": 0.1}} if queue else {}
    models.append(model("own", cheap, model="own-7b", capacity=own_capacity, **qm))
    return parse_config(
        {
            "models": models,
            "routes": [
                {"name": "adaptive", "models": ["a", "b"], "adaptive": {"max_ttft_ms": 300}},
                {"name": "blind", "models": ["a", "b"]},
                {"name": "spill", "models": ["own", "paid"]},
            ],
            "engine": {"live_half_life": 1.0, "timeouts": {"first_token": 30, "total": 60}},
            "metrics": {"enabled": False},
        }
    )


async def request(gw: Gateway, route: str, t0: float, rows: list[Row]) -> None:
    started = time.monotonic()
    try:
        res = await gw.chat({"model": route, "messages": PROMPT})
        model, ok, us = res.record.final_model or "", True, res.record.decision["decision_us"]
    except Exception:  # a failed request is counted, not raised
        model, ok, us = "", False, 0.0
    done = time.monotonic()
    rows.append(Row(started - t0, route, model, (done - started) * 1000, us, ok))


async def clients(
    gw: Gateway, route: str, n: int, seconds: float, t0: float, rows: list[Row]
) -> None:
    """``n`` clients sending back to back (closed loop)."""
    end = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < end:
            await request(gw, route, t0, rows)

    await asyncio.gather(*(one() for _ in range(n)))


async def arrivals(
    gw: Gateway, route: str, rate: float, seconds: float, t0: float, rows: list[Row]
) -> None:
    """Requests arriving at a steady ``rate`` per second (open loop), whatever their latency."""
    tasks = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(request(gw, route, t0, rows)))
    await asyncio.gather(*tasks)


CPU_US: list[float] = []


async def decision_cpu(gw: Gateway, route: str, seconds: float) -> None:
    """While the clients run: the CPU time of one routing decision (needs, the adaptive
    plan up to its first attempt, reading the live estimates), every 5 ms."""
    from modelmix.routing.needs import needs_of
    from modelmix.types import ChatRequest

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        req = ChatRequest(model=route, messages=list(PROMPT))
        t0 = time.thread_time_ns()
        strategy, _ = gw.engine.router.resolve(route)
        next(strategy.plan(req, needs_of(req, 0.0, gw.engine.live), {}))
        CPU_US.append((time.thread_time_ns() - t0) / 1000)
        await asyncio.sleep(0.005)


async def latency_run(sim: Simulator, route: str) -> list[Row]:
    sim.load.set_delay("a", 60)
    sim.load.set_delay("b", 100)
    async with Gateway(config(sim, None), ledger=False) as gw:
        rows: list[Row] = []
        t0 = time.monotonic()

        async def slow_phase() -> None:
            await asyncio.sleep(3)
            sim.load.set_delay("a", 700)
            await asyncio.sleep(4)
            sim.load.set_delay("a", 60)

        cpu = [decision_cpu(gw, route, 12)] if route == "adaptive" else []
        await asyncio.gather(arrivals(gw, route, 60, 12, t0, rows), slow_phase(), *cpu)
    return rows


def moved(rows: list[Row], start: float, end: float, to_a: bool) -> float | None:
    """Seconds after ``start`` until a 0.5 s window's share of ``a`` is below 10 % (or above
    90 % with ``to_a``)."""
    for w in np.arange(start, end, 0.25):
        sel = [r for r in rows if w <= r.t < w + 0.5]
        if not sel:
            continue
        share = sum(r.model == "a" for r in sel) / len(sel)
        if (share >= 0.9) if to_a else (share < 0.1):
            return float(w - start)
    return None


async def load_run(sim: Simulator, capacity: int | None) -> dict[int, dict[str, float]]:
    sim.load.set_capacity("own-7b", 4)
    sim.load.set_delay("own-7b", 200)
    sim.load.set_delay("paid", 100)
    out: dict[int, dict[str, float]] = {}
    async with Gateway(config(sim, capacity), ledger=False) as gw:
        for n in (1, 2, 4, 6, 8, 12):
            sim.load.peak_running["own-7b"] = 0
            rows: list[Row] = []
            await clients(gw, "spill", n, 2.0, time.monotonic(), rows)
            lat = np.array([r.latency_ms for r in rows if r.ok])
            out[n] = {
                "peak_own": float(sim.load.peak_running["own-7b"]),
                "paid_share": sum(r.model == "paid" for r in rows) / len(rows),
                "p95": float(np.percentile(lat, 95)),
                "failed": float(sum(not r.ok for r in rows)),
                "requests": float(len(rows)),
                "decision_p50_us": float(np.median([r.decision_us for r in rows])),
            }
    return out


async def shared_run(sim: Simulator, queue: bool, tenants: int = 2) -> dict[str, float]:
    """The own server (4 slots, 200 ms) is also used by ``tenants`` other clients that call it
    directly (not through the gateway); 4 gateway clients on the ``spill`` route, capacity 4,
    with the server's queue metrics polled (a real HTTP scrape of ``/metrics`` every 0.1 s) or
    in-flight counting only."""
    import openai

    sim.load.set_capacity("own-7b", 4)
    sim.load.set_delay("own-7b", 200)
    sim.load.set_delay("paid", 100)
    other = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="x", max_retries=0)
    stop = asyncio.Event()

    async def tenant() -> None:
        while not stop.is_set():
            await other.chat.completions.create(model="own-7b", messages=PROMPT)  # type: ignore[arg-type]

    async with Gateway(config(sim, 4, queue=queue), ledger=False) as gw:
        tasks = [asyncio.create_task(tenant()) for _ in range(tenants)]
        await asyncio.sleep(0.5)
        sim.load.peak_running["own-7b"] = 0
        rows: list[Row] = []
        await clients(gw, "spill", 4, 4.0, time.monotonic(), rows)
        stop.set()
        await asyncio.gather(*tasks)
    await other.close()
    lat = np.array([r.latency_ms for r in rows if r.ok])
    own = np.array([r.latency_ms for r in rows if r.ok and r.model == "own"])
    return {
        "paid_share": sum(r.model == "paid" for r in rows) / len(rows),
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "own_p95": float(np.percentile(own, 95)) if len(own) else float("nan"),
        "failed": float(sum(not r.ok for r in rows)),
        "requests": float(len(rows)),
    }


def shared_table(runs: dict[str, dict[str, float]]) -> None:
    print("\nShared server: own (4 slots, 200 ms) also busy with 2 other clients; 4 gateway "
          "clients, capacity 4")  # fmt: skip
    print(f"{'route':22s} {'paid share':>10s} {'p50 ms':>7s} {'p95 ms':>7s} {'own p95':>8s} "
          f"{'failed':>7s} {'requests':>8s}")  # fmt: skip
    for name, r in runs.items():
        print(f"{name:22s} {r['paid_share']:10.0%} {r['p50']:7.0f} {r['p95']:7.0f} "
              f"{r['own_p95']:8.0f} {r['failed']:7.0f} {r['requests']:8.0f}")  # fmt: skip


def latency_table(runs: dict[str, list[Row]]) -> None:
    print("Latency: model a slow (700 ms instead of 60 ms) from t=3 s to t=7 s, 60 requests/s")
    print(f"{'route':10s} {'p50 ms':>7s} {'p95 ms':>7s} {'p50 slow':>9s} {'p95 slow':>9s} "
          f"{'a while slow':>13s} "
          f"{'moved away':>11s} {'came back':>10s} {'failed':>7s}")  # fmt: skip
    for route, rows in runs.items():
        lat = np.array([r.latency_ms for r in rows])
        slow = [r for r in rows if 3.5 <= r.t < 7]
        share = sum(r.model == "a" for r in slow) / max(len(slow), 1)
        away, back = moved(rows, 3, 7, False), moved(rows, 7, 12, True)
        fmt = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
        slow_lat = np.array([r.latency_ms for r in rows if 3 <= r.t < 7])
        print(f"{route:10s} {np.percentile(lat, 50):7.0f} {np.percentile(lat, 95):7.0f} "
              f"{np.percentile(slow_lat, 50):9.0f} {np.percentile(slow_lat, 95):9.0f} "
              f"{share:13.0%} {fmt(away):>11s} "
              f"{fmt(back):>10s} {sum(not r.ok for r in rows):7d}")  # fmt: skip


def load_table(runs: dict[str, dict[int, dict[str, float]]]) -> None:
    print("\nLoad: own deployment (capacity 4, 200 ms) before a paid API, rising clients")
    print(f"{'route':15s} {'clients':>7s} {'own peak':>8s} {'paid share':>10s} "
          f"{'p95 ms':>7s} {'failed':>7s} {'requests':>8s}")  # fmt: skip
    for name, steps in runs.items():
        for n, s in steps.items():
            print(f"{name:15s} {n:7d} {s['peak_own']:8.0f} {s['paid_share']:10.0%} "
                  f"{s['p95']:7.0f} {s['failed']:7.0f} {s['requests']:8.0f}")  # fmt: skip


def plot(
    lat: dict[str, list[Row]], load: dict[str, dict[int, dict[str, float]]], path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for route, rows in lat.items():
        ax.scatter([r.t for r in rows], [r.latency_ms for r in rows], s=4, label=route, alpha=0.6)
    ax.axvspan(3, 7, color="red", alpha=0.08, label="a slow")
    ax.set(xlabel="time (s)", ylabel="latency (ms)", title="Latency with a model slowed mid-run")
    ax.legend()
    ax = axes[1]
    bins = np.arange(0, 12, 0.5)
    for route, rows in lat.items():
        share = [
            np.mean([r.model == "a" for r in rows if b <= r.t < b + 0.5] or [np.nan]) for b in bins
        ]
        ax.plot(bins + 0.25, share, marker="o", ms=3, label=route)
    ax.axvspan(3, 7, color="red", alpha=0.08)
    ax.set(xlabel="time (s)", ylabel="share sent to a", title="Traffic to the slowed model")
    ax.legend()
    ax = axes[2]
    for name, steps in load.items():
        ns = list(steps)
        ax.plot(ns, [steps[n]["paid_share"] for n in ns], marker="o", label=f"{name}: paid share")
        ax.plot(ns, [steps[n]["peak_own"] / 12 for n in ns], ls="--", label=f"{name}: own peak/12")
    ax.axhline(4 / 12, color="grey", lw=0.8)
    ax.set(xlabel="concurrent clients", title="Spill-over from capacity 4")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


async def main(plot_path: str | None, shared_only: bool = False) -> None:
    sim = await start_simulator()
    try:
        shared = {
            "queue metrics": await shared_run(sim, True),
            "in-flight counting only": await shared_run(sim, False),
        }
        shared_table(shared)
        if shared_only:
            return
        lat = {route: await latency_run(sim, route) for route in ("adaptive", "blind")}
        latency_table(lat)
        load = {
            "capacity-aware": await load_run(sim, 4),
            "capacity-blind": await load_run(sim, None),
        }
        load_table(load)
        adaptive = [r.decision_us for r in lat["adaptive"]]
        print(f"\nDecision time, adaptive route under load: wall clock (decision_us of "
              f"{len(adaptive)} requests) p50 {np.median(adaptive):.0f} us, p99 "
              f"{np.percentile(adaptive, 99):.0f} us; CPU ({len(CPU_US)} decisions) p50 "
              f"{np.median(CPU_US):.0f} us, p99 {np.percentile(CPU_US, 99):.0f} us")  # fmt: skip
        if plot_path:
            plot(lat, load, plot_path)
    finally:
        await sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="write the figure here (PNG)")
    parser.add_argument("--shared-only", action="store_true", help="only the shared-server run")
    args = parser.parse_args()
    asyncio.run(main(args.plot, args.shared_only))
