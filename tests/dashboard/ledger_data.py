"""A small ledger with hand-computable numbers, shared by the query, report and dashboard tests.

Prices (config overrides, USD per million tokens): small 1 in / 2 out, big 10 in / 30 out.
Route ``auto`` = [small, big]: its default baseline is big (the higher output price).

=====  =====  ========================================  =========  ======  =====  ========
req    route  attempts (model:status prompt/completion)   cost       team    tags   key
=====  =====  ========================================  =========  ======  =====  ========
r1     auto   small:ok 1000/500                          0.002      search  a, b   k1
r2     auto   small:500, big:ok 2000/100 (a fallback)    0.023      search  a      k1
r3     auto   small:ok 100/50, big:ok 100/50 (escalated) 0.0027     ads     -      k2
r4     auto   small:503 (failed)                         0          -       -      -
r5     -      small:ok 10/10 (model asked directly)      0.00003~   -       -      -
r6     auto   small:ok 200/100 (cascade, not escalated)  0.0004     -       -      -
=====  =====  ========================================  =========  ======  =====  ========

~ r5's cost is flagged ``estimated`` (cost confidence); every other row is ``exact``.

Savings on ``auto`` (baseline big): r1 0.025, r2 0.023, r3 0.0025, r6 0.005 = 0.0555 against
an actual 0.0281: saved 0.0274.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from typing import Any

from modelmix.config import Config
from modelmix.ledger.db import Location, is_postgres
from modelmix.ledger.postgres import open_writer_ledger
from modelmix.ledger.records import AttemptRecord, RequestRecord
from tests.helpers import make_config, sim_model

PRICES = {
    "small": (Decimal(1) / 10**6, Decimal(2) / 10**6),
    "big": (Decimal(10) / 10**6, Decimal(30) / 10**6),
}


def config(
    ledger_path: Location, routes: list[dict[str, Any]] | None = None, **extra: Any
) -> Config:
    """The models and routes the prepared rows use, on the ledger at ``ledger_path`` (a
    PostgreSQL URL goes in ``ledger.url``, with a temporary data directory for the counters)."""
    ledger: dict[str, Any] = {"path": str(ledger_path), "flush_interval": 0.05}
    if is_postgres(ledger_path):
        ledger = {"url": ledger_path, "flush_interval": 0.05}
        extra.setdefault("data_dir", tempfile.mkdtemp(prefix="modelmix-data-"))
    return make_config(
        [
            sim_model("small", price={"input": "1", "output": "2"}),
            sim_model("big", price={"input": "10", "output": "30"}),
        ],
        routes or [{"name": "auto", "models": ["small", "big"]}],
        ledger=ledger,
        **extra,
    )


def record(
    rid: str,
    started_at: float,
    attempts: list[tuple[str, str, int, int]],
    *,
    route: str | None = "auto",
    team: str | None = None,
    tags: tuple[str, ...] = (),
    key_id: str | None = None,
    decision: dict[str, Any] | None = None,
    latency_ms: float = 100.0,
    confidence: str = "exact",
) -> RequestRecord:
    """``attempts``: (model, "ok" or an HTTP status, prompt tokens, completion tokens)."""
    recs: list[AttemptRecord] = []
    for seq, (model, status, pt, ct) in enumerate(attempts):
        ok = status == "ok"
        p_in, p_out = PRICES[model]
        recs.append(
            AttemptRecord(
                request_id=rid,
                seq=seq,
                model=model,
                deployment=f"{model}#0",
                provider="openai",
                upstream_model=model,
                started_at=started_at + seq * 0.01,
                latency_ms=latency_ms / 2,
                status="ok" if ok else "error",
                http_status=200 if ok else int(status),
                error_kind=None if ok else "server_error",
                prompt_tokens=pt,
                completion_tokens=ct,
                cost_usd=p_in * pt + p_out * ct,
                price_source="config",
            )
        )
    answered = [a for a in recs if a.status == "ok"]
    ok = bool(answered)
    return RequestRecord(
        id=rid,
        started_at=started_at,
        api="openai",
        requested_model=route or attempts[0][0],
        route=route,
        key_id=key_id,
        config_hash="test",
        decision=decision or {"strategy": "fallback", "chosen": attempts[0][0]},
        attempts=recs,
        status="ok" if ok else "error",
        http_status=200 if ok else 503,
        error=None if ok else "all upstreams failed",
        final_model=answered[-1].model if ok else None,
        latency_ms=latency_ms,
        ttft_ms=latency_ms / 2 if ok else None,
        prompt_tokens=sum(a.prompt_tokens for a in recs),
        completion_tokens=sum(a.completion_tokens for a in recs),
        cost_usd=sum((a.cost_usd or Decimal(0) for a in recs), Decimal(0)),
        team=team,
        tags=tuple(tags),
        cost_confidence=confidence,
    )


def records(t0: float) -> list[RequestRecord]:
    cascade = {"strategy": "cascade", "escalated": True, "chosen": "big"}
    return [
        record(
            "r1",
            t0,
            [("small", "ok", 1000, 500)],
            team="search",
            tags=("a", "b"),
            key_id="k1",
            latency_ms=100.0,
        ),
        record(
            "r2",
            t0 + 10,
            [("small", "500", 0, 0), ("big", "ok", 2000, 100)],
            team="search",
            tags=("a",),
            key_id="k1",
            latency_ms=400.0,
        ),
        record(
            "r3",
            t0 + 20,
            [("small", "ok", 100, 50), ("big", "ok", 100, 50)],
            team="ads",
            key_id="k2",
            decision=cascade,
            latency_ms=300.0,
        ),
        record("r4", t0 + 3600, [("small", "503", 0, 0)], latency_ms=50.0),
        record(
            "r5",
            t0 + 3610,
            [("small", "ok", 10, 10)],
            route=None,
            latency_ms=200.0,
            confidence="estimated",
        ),
        record(
            "r6",
            t0 + 3620,
            [("small", "ok", 200, 100)],
            decision={"strategy": "cascade", "escalated": False, "chosen": "small"},
            latency_ms=250.0,
        ),
    ]


def fill(path: Location, t0: float) -> Location:
    with open_writer_ledger(path) as ledger:
        for rec in records(t0):
            ledger.record(rec)
    return path
