"""CPU cost of one upstream call: aiohttp's client against modelmix's own HTTP/1.1 pool.

    python3 benchmarks/perf/client_cost.py [--seconds 3] [--concurrency 32] [--rounds 3]

Starts the benchmark's mock upstream (core 0), then in this process (core 1) drives it with
each client in turn, interleaved over ``--rounds``: ``--concurrency`` loops each sending
``POST /v1/chat/completions`` (JSON, then SSE read as it arrives) for ``--seconds``. Prints
requests/s and this process's CPU time per request (the figure that matters: a gateway pays
it on every call). Both clients reuse connections and carry a timeout per call, as the
gateway does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson

from modelmix.providers.transport import ConnectionPool

HERE = Path(__file__).resolve().parent
PORT = 9188
URL = f"http://127.0.0.1:{PORT}/v1/chat/completions"
HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


def _body(stream: bool) -> bytes:
    return orjson.dumps(
        {"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )


Call = Callable[[bytes], Awaitable[int]]


def aiohttp_client() -> tuple[Call, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000), timeout=aiohttp.ClientTimeout(total=None)
    )
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=5)

    async def call(body: bytes) -> int:
        async with session.post(URL, data=body, headers=HEADERS, timeout=timeout) as resp:
            n = 0
            async for chunk in resp.content.iter_any():
                n += len(chunk)
            return n

    return call, session.close


def modelmix_client() -> tuple[Call, Callable[[], Awaitable[None]]]:
    pool = ConnectionPool()

    async def call(body: bytes) -> int:
        async with asyncio.timeout(600):
            resp = await pool.request("POST", URL, headers=HEADERS, body=body, connect_timeout=5)
            n = 0
            while chunk := await resp.readany():
                n += len(chunk)
            resp.release()
            return n

    return call, pool.close


async def measure(make: Callable[[], tuple[Call, Callable[[], Awaitable[None]]]], stream: bool,
                  seconds: float, concurrency: int) -> tuple[float, float]:  # fmt: skip
    call, close = make()
    body = _body(stream)
    for _ in range(50):  # warm up: connections open, code paths hot
        await call(body)
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await call(body) <= 0:
                raise RuntimeError("empty answer")
            done += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*[loop() for _ in range(concurrency)])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await close()
    return done / wall, cpu / done * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    cpus = os.cpu_count() or 1
    pin = ["taskset", "-c", "0"] if cpus > 1 else []
    mock = subprocess.Popen(
        [*pin, sys.executable, str(HERE / "mock_upstream.py"), "--port", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if cpus > 1:
            os.sched_setaffinity(0, {1})
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        time.sleep(1.0)
        clients = {"aiohttp": aiohttp_client, "modelmix": modelmix_client}
        results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        for r in range(a.rounds):
            order = list(clients.items())
            if r % 2:
                order.reverse()
            for name, make in order:
                for stream in (False, True):
                    res = asyncio.run(measure(make, stream, a.seconds, a.concurrency))
                    results.setdefault((name, stream), []).append(res)
        print(f"upstream client cost: {a.rounds} interleaved rounds x {a.seconds:g} s, "
              f"{a.concurrency} concurrent, client on core 1, mock on core 0")  # fmt: skip
        print(f"{'client':10s} {'kind':6s} {'req/s':>8s} {'CPU us/req':>11s} {'vs aiohttp':>11s}")
        for stream in (False, True):
            base = sum(c for _, c in results[("aiohttp", stream)]) / a.rounds
            for name in clients:
                runs = results[(name, stream)]
                rps = sum(x for x, _ in runs) / len(runs)
                cpu = sum(c for _, c in runs) / len(runs)
                kind = "stream" if stream else "json"
                print(f"{name:10s} {kind:6s} {rps:8.0f} {cpu:11.1f} {cpu / base:10.2f}x")
    finally:
        mock.terminate()
        mock.wait(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
