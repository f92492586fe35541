"""Ledger writer cost per request row: random request ids against time-ordered ones.

    python3 benchmarks/ledger_ids.py [--rows 60000] [--batch 260]

Writes the same realistic rows (one request, one attempt, a learned-routing decision) into a
fresh ledger in batches, as the writer thread does, and prints the writer's CPU and wall time
per row. Random ids land on random pages of the primary-key B-trees (``requests.id`` and
``attempts(request_id, seq)``); ids that grow with time (``new_request_id``) are appended at
their right edge. The gap widens as the table grows.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from modelmix.gateway import new_request_id
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.ledger.schema import connect, ensure_schema
from modelmix.ledger.sqlite import SqliteLedger, _Rows

DECISION = {
    "strategy": "learned",
    "screened": [],
    "knob": {"quality_target": 0.95, "mode": "profiles", "threshold": 0.873},
    "prompt_tokens": 14,
    "candidates": [
        {"model": "mock-small", "p_good": 0.7123, "cost": 1.23e-5},
        {"model": "mock-large", "p_good": 0.8523, "cost": 1.23e-4},
    ],
    "chosen": "mock-large",
    "decision_us": 83.1,
}


def rows(request_id: str) -> _Rows:
    return _Rows(request_record(request_id))


def request_record(request_id: str) -> RequestRecord:
    """A realistic record: one request, one attempt, a learned-routing decision."""
    now = time.time()
    rec = RequestRecord(
        id=request_id,
        started_at=now,
        api="openai",
        requested_model="auto",
        route="auto",
        key_id="key-1",
        config_hash="abc123",
        decision=DECISION,
        final_model="mock-large",
        latency_ms=1.2,
        ttft_ms=1.2,
        prompt_tokens=14,
        completion_tokens=9,
        cost_usd=Decimal("0.000123"),
    )
    rec.attempts.append(
        AttemptRecord(request_id, 0, "mock-large", "mock-large#0", "vllm", "mock-model", now)
    )
    return rec


def measure(ids: str, total: int, batch: int) -> tuple[float, float]:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(str(Path(tmp) / "ledger.db"), check_same_thread=False)
        ensure_schema(conn)
        cpu = wall = 0.0
        for _ in range(total // batch):
            if ids == "random":
                todo = [rows(f"mm-{rng.getrandbits(96):024x}") for _ in range(batch)]
            else:
                todo = [rows(new_request_id()) for _ in range(batch)]
            c0, w0 = time.thread_time(), time.perf_counter()
            SqliteLedger._insert(conn, todo)
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
        conn.close()
    n = (total // batch) * batch
    return cpu / n * 1e6, wall / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=260, help="rows per transaction")
    a = ap.parse_args()
    print(f"{a.rows} rows in batches of {a.batch}")
    print(f"{'request ids':14s} {'cpu us/row':>11s} {'wall us/row':>12s}")
    results = {ids: measure(ids, a.rows, a.batch) for ids in ("random", "time-ordered")}
    for ids, (cpu, wall) in results.items():
        print(f"{ids:14s} {cpu:11.1f} {wall:12.1f}")
    ratio = results["random"][0] / results["time-ordered"][0]
    print(f"random / time-ordered CPU: {ratio:.2f}x")


if __name__ == "__main__":
    main()
