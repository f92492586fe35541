"""Live estimates: fast/slow averages, fading back to the baseline, in-flight counts, sharing
between processes through the mapped file, seeding from the ledger."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from modelmix.adaptive.live import LiveStats
from modelmix.adaptive.seed import seed_from_ledger


def test_unknown_deployment_has_no_estimate() -> None:
    est = LiveStats().estimate("a#0")
    assert est.ttft_ms is None and est.samples == 0 and est.in_flight == 0


def test_slow_samples_show_within_a_few_requests_and_fade_back() -> None:
    live = LiveStats(half_life=10.0)
    for _ in range(20):
        live.end("a#0", ok=True, ttft_ms=100.0, tokens=50, latency_ms=600.0, now=1000.0)
    before = live.estimate("a#0", now=1000.0)
    assert before.ttft_ms == pytest.approx(100.0)
    assert before.tokens_per_s == pytest.approx(100.0)  # 50 tokens in 0.5 s
    for _ in range(3):
        live.end("a#0", ok=True, ttft_ms=2000.0, tokens=50, latency_ms=2500.0, now=1001.0)
    slow = live.estimate("a#0", now=1001.0)
    assert slow.ttft_ms is not None and slow.ttft_ms > 1000.0  # seen after 3 requests
    later = live.estimate("a#0", now=1001.0 + 60.0)  # six half-lives without a sample
    assert later.ttft_ms is not None and later.ttft_ms < 600.0


def test_a_burst_of_slow_answers_does_not_become_the_baseline() -> None:
    """At 60 requests/s, 45 slow answers in 0.75 s (before the route leaves the deployment)
    move the baseline only a little, so the estimate fades back under a 300 ms limit and the
    deployment is tried again; counted per sample, they would have set the baseline near 450 ms."""
    live = LiveStats(half_life=1.0)
    t = 1000.0
    for _ in range(300):  # 5 s of 60 ms answers
        t += 1 / 60
        live.end("a#0", ok=True, ttft_ms=60.0, now=t)
    for _ in range(45):
        t += 1 / 60
        live.end("a#0", ok=True, ttft_ms=700.0, now=t)
    assert (live.estimate("a#0", now=t).ttft_ms or 0.0) > 600.0  # seen at once
    later = live.estimate("a#0", now=t + 5.0)
    assert later.ttft_ms is not None and later.ttft_ms < 150.0


def test_calls_in_flight_without_news_raise_the_estimate() -> None:
    """A deployment that turns slow is seen before its first slow answer: calls in flight and
    no first token or answer for 400 ms mean a first token takes at least 400 ms."""
    live = LiveStats(half_life=10.0)
    for i in range(20):
        live.begin("a#0", now=100.0 + i / 60)
        live.end("a#0", ok=True, ttft_ms=60.0, now=100.06 + i / 60)
    t = 100.06 + 19 / 60
    assert live.estimate("a#0", now=t).stalled_ms == 0.0
    for i in range(10):  # these do not answer
        live.begin("a#0", now=t + i / 60)
    est = live.estimate("a#0", now=t + 0.4)
    assert est.stalled_ms == pytest.approx(400.0) and est.ttft_ms == pytest.approx(400.0)
    live.first_token("a#0", 60.0, now=t + 0.45)  # news: the stall ends
    assert live.estimate("a#0", now=t + 0.46).stalled_ms == pytest.approx(10.0)


def test_in_flight_counts_and_error_rate() -> None:
    live = LiveStats()
    live.begin("a#0")
    live.begin("a#0")
    assert live.in_flight("a#0") == 2
    live.end("a#0", ok=False)
    live.release("a#0")
    est = live.estimate("a#0")
    assert est.in_flight == 0 and est.error_rate == pytest.approx(0.3)


def test_stream_ttft_is_counted_once_and_rate_at_the_end() -> None:
    live = LiveStats()
    live.begin("a#0")
    live.first_token("a#0", 200.0, now=5.0)
    assert live.in_flight("a#0") == 1
    live.end("a#0", ok=True, ttft_ms=200.0, tokens=100, latency_ms=1200.0, ttft_seen=True, now=5)
    est = live.estimate("a#0", now=5.0)
    assert est.samples == 1 and est.ttft_ms == pytest.approx(200.0)
    assert est.tokens_per_s == pytest.approx(100.0) and est.in_flight == 0


def test_two_processes_share_estimates_through_the_mapped_file(tmp_path: Path) -> None:
    a = LiveStats(path=tmp_path / "l.live")
    b = LiveStats(path=tmp_path / "l.live")  # a second worker on the same ledger
    try:
        assert a.fresh and not b.fresh
        a.begin("x#0")
        a.end("x#0", ok=True, ttft_ms=300.0, tokens=10, latency_ms=400.0)
        b.begin("x#0")
        est = b.estimate("x#0")
        assert est.ttft_ms == pytest.approx(300.0) and est.in_flight == 1
        assert a.in_flight("x#0") == 1
    finally:
        a.close()
        b.close()


def test_seeded_from_the_ledgers_recent_attempts(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE attempts (deployment TEXT, started_at REAL, status TEXT, ttft_ms REAL,"
            " latency_ms REAL, completion_tokens INTEGER, error_kind TEXT)"
        )
        now = time.time()
        rows = [("m#0", now - 10, "ok", 400.0, 1400.0, 200, None)] * 3
        rows += [("m#0", now - 5, "error", None, 50.0, 0, "server")]
        rows += [("old#0", now - 7200, "ok", 90.0, 100.0, 1, None)]  # outside the window
        conn.executemany("INSERT INTO attempts VALUES (?,?,?,?,?,?,?)", rows)
    live = LiveStats()
    assert seed_from_ledger(live, db) == 1
    est = live.estimate("m#0")
    assert est.ttft_ms == pytest.approx(400.0) and est.tokens_per_s == pytest.approx(200.0)
    assert est.error_rate == pytest.approx(0.25) and est.tokens == pytest.approx(200.0)
    assert live.estimate("old#0").ttft_ms is None


def test_shared_only_when_a_route_or_model_routes_on_the_estimates() -> None:
    from modelmix.adaptive.live import uses_live
    from tests.helpers import make_config

    plain = [{"name": "m", "provider": "ollama"}]
    assert not uses_live(make_config(plain, [{"name": "r", "models": ["m"]}]))
    assert uses_live(make_config([{**plain[0], "capacity": 2}]))
    assert uses_live(make_config([{**plain[0], "deployments": [{"capacity": 1}]}]))
    assert uses_live(make_config([{**plain[0], "balance": "least_busy"}]))
    knob = [{"name": "r", "models": ["m"], "adaptive": {"max_ttft_ms": 100}}]
    assert uses_live(make_config(plain, knob))
