"""Seed the live estimates from the ledger at start-up: per deployment, the mean time to first
token, output tokens per second, typical completion length and error share of its recent
attempts (``LOOKBACK_S``), so a restarted gateway routes on history rather than starting
blind. Reads the ``attempts`` table once, off the request path."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from modelmix.adaptive.live import LiveStats

LOOKBACK_S = 3600.0
#: At most this many recent attempts are read (the newest).
MAX_ROWS = 50_000

_QUERY = """
SELECT deployment,
       AVG(CASE WHEN status = 'ok' THEN ttft_ms END),
       AVG(CASE WHEN status = 'ok' AND completion_tokens > 0 AND latency_ms > ttft_ms
                THEN completion_tokens * 1000.0 / (latency_ms - ttft_ms) END),
       AVG(CASE WHEN status = 'error' AND COALESCE(error_kind, '') NOT IN
                ('invalid_request', 'content_filter') THEN 1.0 ELSE 0.0 END),
       AVG(CASE WHEN status = 'ok' AND completion_tokens > 0 THEN completion_tokens END)
FROM (SELECT * FROM attempts WHERE started_at >= ? ORDER BY started_at DESC LIMIT ?)
GROUP BY deployment
"""


def seed_from_ledger(live: LiveStats, ledger_path: str | Path, now: float | None = None) -> int:
    """Seed ``live`` from the ledger's recent attempts; returns how many deployments."""
    path = Path(ledger_path)
    if not path.exists():
        return 0
    since = (time.time() if now is None else now) - LOOKBACK_S
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute(_QUERY, (since, MAX_ROWS)).fetchall()
        except sqlite3.OperationalError:  # no attempts table yet
            return 0
    n = 0
    for dep, ttft, tps, err, toks in rows:
        if ttft is None:
            continue
        live.seed(str(dep), float(ttft), tps, float(err or 0.0), float(toks or 0.0))
        n += 1
    return n
