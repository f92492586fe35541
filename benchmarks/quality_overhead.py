"""What the quality loop costs a client request, in-process, on the simulated upstream.

    python3 benchmarks/quality_overhead.py [-n 2000]

Runs the same non-streamed requests through ``Gateway.chat`` with the loop off, with capture
on, with capture and the online judge on (every answer judged in the background), and with a
shadow on every request too; prints the client-side latency of each (the background calls
share the event loop and the simulated upstream, so what they cost the client shows here).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from modelmix.config import parse_config
from modelmix.gateway import Gateway


def config(tmp: Path, quality: dict[str, Any], shadow: bool) -> Any:
    model = {
        "provider": "openai",
        "base_url": "builtin:simulated",
        "price": {"input": "1", "output": "2"},
    }
    route: dict[str, Any] = {"name": "r", "models": ["m"]}
    if shadow:
        route["shadow"] = {"model": "s", "sample": 1.0}
    return parse_config(
        {
            "ledger": {"path": str(tmp / "ledger.db")},
            "metrics": {"enabled": False},
            "models": [
                {"name": "m", "model": "sim-small", **model},
                {"name": "s", "model": "sim-large", **model},
                {"name": "j", "model": "sim-large", **model},
            ],
            "routes": [route],
            "quality": {**quality, "max_background": 64},
        }
    )


async def measure(n: int, quality: dict[str, Any], shadow: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Gateway(config(Path(tmp), quality, shadow), background=False) as gw:
            body = {"model": "r", "messages": [{"role": "user", "content": "What is 17 + 25?"}]}
            for _ in range(50):  # warm up: connections, tokenizer
                await gw.chat(body)
            out = []
            for _ in range(n):
                started = time.perf_counter()
                await gw.chat(body)
                out.append((time.perf_counter() - started) * 1000)
            assert gw.quality is not None
            await gw.quality.flush()
            return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    cases = [
        ("off", {}, False),
        ("capture", {"capture": {"sample": 1.0}}, False),
        (
            "capture + judge",
            {"capture": {"sample": 1.0}, "judge": {"model": "j", "sample": 1.0}},
            False,
        ),
        (
            "capture + judge + shadow",
            {"capture": {"sample": 1.0}, "judge": {"model": "j", "sample": 1.0}},
            True,
        ),
    ]
    print(f"{'quality loop':<26} {'requests':>8} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, quality, shadow in cases:
        ms = asyncio.run(measure(args.n, quality, shadow))
        ms.sort()
        p99 = ms[int(len(ms) * 0.99) - 1]
        mean, median = statistics.mean(ms), statistics.median(ms)
        print(f"{name:<26} {len(ms):>8} {mean:>8.3f} {median:>8.3f} {p99:>8.3f}")


if __name__ == "__main__":
    main()
