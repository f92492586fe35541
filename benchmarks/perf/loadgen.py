"""Closed-loop HTTP load generator (aiohttp client, one process, N concurrent workers).

Each worker sends a chat request, reads the whole answer, records its latency (and, for streams,
the time to the first body byte), and sends the next, until ``--duration`` seconds have passed or
``--requests`` have been started. Requests in flight at the deadline are completed and counted,
so ``count`` is exactly the number of requests the server received. Prints one JSON object:

    {"count", "errors", "statuses", "elapsed", "rps", "latency": {hist}, "ttfb": {hist}}

where a histogram maps bucket index -> count, bucket ``i`` covering ``[1.01**i, 1.01**(i+1))``
microseconds (1% resolution; merge histograms by adding counts, see ``percentile``).

    python3 benchmarks/perf/loadgen.py --url http://127.0.0.1:9100/v1/chat/completions \
        --concurrency 32 --duration 5 [--stream] [--key sk-...] [--model m]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping

import aiohttp

_LOG_BASE = math.log(1.01)


def bucket(seconds: float) -> int:
    return int(math.log(max(seconds * 1e6, 1.0)) / _LOG_BASE)


def percentile(hist: Mapping[int | str, int], q: float) -> float:
    """The q-th percentile (0..100) of a histogram, in milliseconds (bucket midpoint)."""
    items = sorted((int(k), v) for k, v in hist.items())
    total = sum(v for _, v in items)
    if total == 0:
        return float("nan")
    rank = q / 100.0 * total
    seen = 0
    for k, v in items:
        seen += v
        if seen >= rank:
            return math.exp((k + 0.5) * _LOG_BASE) / 1000.0
    return math.exp((items[-1][0] + 0.5) * _LOG_BASE) / 1000.0


def merge(a: dict[str, int], b: Mapping[int | str, int]) -> dict[str, int]:
    for k, v in b.items():
        a[str(k)] = a.get(str(k), 0) + v
    return a


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def run(
    url: str,
    *,
    concurrency: int,
    duration: float,
    max_requests: int | None,
    stream: bool,
    model: str,
    key: str | None,
) -> dict[str, object]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = request_body(model, stream)
    latency: Counter[int] = Counter()
    ttfb: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    started = 0
    errors = 0
    first_error: str | None = None
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        deadline = t0 + duration

        async def worker() -> None:
            nonlocal started, errors, first_error
            perf = time.perf_counter
            while perf() < deadline and (max_requests is None or started < max_requests):
                started += 1
                t = perf()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        if stream:
                            first = await resp.content.readany()
                            ttfb[bucket(perf() - t)] += 1
                            if first:
                                while await resp.content.readany():
                                    pass
                        else:
                            await resp.read()
                        statuses[str(resp.status)] += 1
                        if resp.status != 200:
                            errors += 1
                            first_error = first_error or f"HTTP {resp.status}"
                except Exception as exc:
                    errors += 1
                    statuses["exception"] += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                latency[bucket(perf() - t)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    count = sum(latency.values())
    return {
        "count": count,
        "errors": errors,
        "first_error": first_error,
        "statuses": dict(statuses),
        "elapsed": elapsed,
        "rps": count / elapsed if elapsed else 0.0,
        "latency": {str(k): v for k, v in latency.items()},
        "ttfb": {str(k): v for k, v in ttfb.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", "-c", type=int, default=1)
    parser.add_argument("--duration", "-d", type=float, default=5.0)
    parser.add_argument("--requests", "-n", type=int, default=None, help="stop after N")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", default="mock-model")
    parser.add_argument("--key", default=None)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(
            args.url,
            concurrency=args.concurrency,
            duration=args.duration,
            max_requests=args.requests,
            stream=args.stream,
            model=args.model,
            key=args.key,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
