"""What the SIGKILL-safe ledger costs: batched commits against a commit per request.

    python3 benchmarks/ledger_sync.py [--requests 5000]

Records the rows of ``ledger_ids.py`` (one request, one attempt, a learned decision) through
the default ledger (``record()`` queues; the writer thread commits in batches) and through the
synchronous one (``ledger.synchronous: true``: ``record()`` commits before it returns), and
prints, per mode, the time ``record()`` holds the calling thread (the server's event loop) per
request and the most requests per second one event loop could record. The gateway's own per-request work is
not included: this is the ledger's share only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ledger_ids import request_record  # the same realistic rows (run from any directory)

from modelmix.gateway import new_request_id
from modelmix.ledger.sqlite import SqliteLedger
from modelmix.ledger.sync import SyncSqliteLedger


def measure(cls: type[SqliteLedger], n: int) -> tuple[float, float]:
    """(µs record() holds the caller per request, µs until all are committed per request)."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = cls(Path(tmp) / "ledger.db")
        ledger.start()
        records = [request_record(new_request_id()) for _ in range(n)]
        t0 = time.perf_counter()
        for rec in records:
            ledger.record(rec)
        held = time.perf_counter() - t0
        ledger.flush()
        total = time.perf_counter() - t0
        assert ledger.written == n, (ledger.written, n)
        ledger.close()
    return held / n * 1e6, total / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    print(f"{'ledger':<34} {'record() µs/req':>16} {'committed µs/req':>17} {'max req/s':>10}")
    for name, cls in (
        ("batched (default)", SqliteLedger),
        ("synchronous (SIGKILL-safe)", SyncSqliteLedger),
    ):
        held, total = measure(cls, args.requests)
        print(f"{name:<34} {held:>16.1f} {total:>17.1f} {1e6 / held:>10.0f}")


if __name__ == "__main__":
    main()
