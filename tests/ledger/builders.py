"""Realistic ledger records for the ledger and CLI tests."""

from __future__ import annotations

from decimal import Decimal

from modelmix.ledger.records import AttemptRecord, RequestRecord


def make_record(
    rid: str,
    *,
    started_at: float = 1_700_000_000.0,
    model: str = "gpt-4o-mini",
    route: str | None = None,
    key_id: str | None = None,
    fail_first_on: str | None = None,
    cost: str = "0.000123",
    latency_ms: float = 100.0,
    status: str = "ok",
    unpriced_attempt: bool = False,
) -> RequestRecord:
    """One request; with ``fail_first_on``, a 429 on that model precedes the answer."""
    attempts: list[AttemptRecord] = []
    if fail_first_on is not None:
        attempts.append(
            AttemptRecord(
                request_id=rid,
                seq=0,
                model=fail_first_on,
                deployment=f"{fail_first_on}#0",
                provider="openai",
                upstream_model=fail_first_on,
                started_at=started_at,
                latency_ms=20.0,
                status="error",
                http_status=429,
                error_kind="rate_limit",
                error="Rate limit reached",
                cost_usd=Decimal(0),
                price_source="config",
            )
        )
    ok = status == "ok"
    attempts.append(
        AttemptRecord(
            request_id=rid,
            seq=len(attempts),
            model=model,
            deployment=f"{model}#0",
            provider="openai",
            upstream_model=model,
            started_at=started_at + 0.02,
            latency_ms=latency_ms - 20,
            ttft_ms=30.0,
            status="ok" if ok else "error",
            http_status=200 if ok else 503,
            error_kind=None if ok else "overloaded",
            prompt_tokens=100 if ok else 0,
            completion_tokens=20 if ok else 0,
            cached_tokens=10 if ok else 0,
            cost_usd=None if unpriced_attempt else Decimal(cost if ok else 0),
            price_source=None if unpriced_attempt else f"genai-prices:openai/{model}",
        )
    )
    return RequestRecord(
        id=rid,
        started_at=started_at,
        api="openai",
        requested_model=route or model,
        route=route,
        stream=False,
        key_id=key_id,
        config_hash="abc123",
        decision={"candidates": [{"model": model, "eligible": True, "p": Decimal("0.5")}]},
        attempts=attempts,
        status=status,
        http_status=200 if ok else 503,
        error=None if ok else "all upstreams failed",
        final_model=model if ok else None,
        latency_ms=latency_ms,
        ttft_ms=40.0,
        prompt_tokens=100 if ok else 0,
        completion_tokens=20 if ok else 0,
        cached_tokens=10 if ok else 0,
        cost_usd=Decimal(cost if ok else 0),
        metadata={"team": "search"},
    )
