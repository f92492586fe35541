"""The ledger writer on SQLite and on PostgreSQL: cost of ``record()`` and writer throughput.

    python3 benchmarks/ledger_backends.py [--rows 20000] [--url postgresql://...]

Records the same realistic rows (one request, two attempts, a routing decision) into a fresh
ledger of each kind and prints, per backend: the mean cost of ``record()`` (what the request
path pays: building the rows and queueing them, no database I/O) and the writer's throughput
(rows committed per second, from the first ``record()`` until ``flush()`` returns). Without
``--url`` a throwaway PostgreSQL server is started from the distribution's binaries (as the
tests do, ``tests/pg.py``); run from the repository root.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from modelmix.gateway import new_request_id
from modelmix.ledger.postgres import PostgresLedger
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.ledger.sqlite import SqliteLedger

DECISION = {"strategy": "fallback", "candidates": [{"model": "a", "eligible": True}]}


def record() -> RequestRecord:
    rid = new_request_id()
    now = time.time()
    attempts = [
        AttemptRecord(rid, seq, f"m{seq}", f"m{seq}#0", "openai", "gpt-4o-mini", now,
                      latency_ms=120.0, ttft_ms=40.0, status="ok" if seq else "error",
                      http_status=200 if seq else 500, prompt_tokens=100, completion_tokens=20,
                      cost_usd=Decimal("0.000027"), price_source="genai-prices")  # fmt: skip
        for seq in range(2)
    ]
    return RequestRecord(
        id=rid, started_at=now, api="openai", requested_model="auto", route="auto",
        key_id="key_1", config_hash="abc", decision=DECISION, attempts=attempts,
        final_model="m1", latency_ms=250.0, prompt_tokens=100, completion_tokens=20,
        cost_usd=Decimal("0.000054"), tags=("team:a",),
    )  # fmt: skip


def measure(ledger: SqliteLedger, n: int) -> tuple[float, float]:
    """(mean microseconds per ``record()``, requests committed per second)."""
    records = [record() for _ in range(n)]
    with ledger:
        start = time.perf_counter()
        for rec in records:
            ledger.record(rec)
        queued = time.perf_counter()
        ledger.flush()
        done = time.perf_counter()
        assert ledger.written == n and ledger.dropped == 0
    return (queued - start) / n * 1e6, n / (done - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway one)")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.pg import PgServer

        server = PgServer().start()
        url = server.new_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {
                "sqlite": measure(SqliteLedger(Path(tmp) / "ledger.db"), args.rows),
                "postgresql": measure(PostgresLedger(url), args.rows),
            }
    finally:
        if server is not None:
            server.stop()
    print(f"{args.rows} requests (2 attempts each)")
    print(f"{'backend':<12} {'record() us':>12} {'writer req/s':>13}")
    for name, (per_call, rate) in results.items():
        print(f"{name:<12} {per_call:>12.1f} {rate:>13,.0f}")


if __name__ == "__main__":
    main()
