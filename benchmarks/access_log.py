"""What the access log (``modelmix serve``'s default, ``--no-access-log`` to drop it) costs a
request: an ASGI app that answers at once, called directly and through ``AccessLog``, the lines
written to /dev/null as ``modelmix serve`` writes them to stderr (batched).

    python3 benchmarks/access_log.py [-n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from modelmix.server.access_log import AccessLog

SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}
HEADERS = [(b"x-modelmix-request-id", b"mm-0193aa"), (b"x-modelmix-model", b"sim-small")]


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def send(message: Any) -> None:
    return None


async def per_call(target: Any, n: int) -> float:
    flush = getattr(target, "flush", None)
    started = time.perf_counter()
    for i in range(n):
        await target(SCOPE, receive, send)
        if flush is not None and i % 100 == 99:  # one write per 100 lines (~2k req/s, 50 ms)
            flush()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200_000)
    n = parser.parse_args().n
    devnull = open(os.devnull, "w")  # noqa: SIM115
    bare = asyncio.run(per_call(app, n))
    logged = asyncio.run(per_call(AccessLog(app, devnull), n))
    print(f"{'':24}{'us per request':>16}")
    print(f"{'without access log':24}{bare:16.2f}")
    print(f"{'with access log':24}{logged:16.2f}")
    print(f"{'overhead':24}{logged - bare:16.2f}")


if __name__ == "__main__":
    main()
