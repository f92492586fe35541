from __future__ import annotations

import pytest

from modelmix.budgets import RateLimit, RateLimited, RateLimiter
from modelmix.budgets.limits import format_reset


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_with_headers_and_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(rpm=3)
    states = [limiter.acquire("k", limit, 10) for _ in range(3)]
    assert [s.remaining_requests for s in states] == [2, 1, 0]
    h = states[-1].headers()
    assert h["x-ratelimit-limit-requests"] == "3"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert h["x-ratelimit-reset-requests"] == "1m0s"  # 3 used, 1 back every 20 s
    assert "x-ratelimit-limit-tokens" not in h
    with pytest.raises(RateLimited) as info:
        limiter.acquire("k", limit, 10)
    err = info.value
    assert err.status == 429 and err.code == "rate_limit_exceeded"
    assert err.retry_after == pytest.approx(20.0)
    assert err.headers["retry-after"] == "20"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "3 requests per minute" in err.message
    limiter.acquire("other", limit, 10)  # keys do not share buckets
    clock.now += 19.9
    with pytest.raises(RateLimited):
        limiter.acquire("k", limit, 10)
    clock.now += 0.2
    assert limiter.acquire("k", limit, 10).remaining_requests == 0
    clock.now += 120  # a quiet spell refills to the limit, not beyond
    assert [limiter.acquire("k", limit, 1).remaining_requests for _ in range(3)] == [2, 1, 0]


def test_tokens_per_minute_estimate_then_adjust() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(rpm=100, tpm=1000)
    s = limiter.acquire("k", limit, 600)
    assert s.remaining_tokens == 400 and s.limit_tokens == 1000
    assert s.headers()["x-ratelimit-reset-tokens"] == "36s"
    with pytest.raises(RateLimited) as info:
        limiter.acquire("k", limit, 500)
    assert "1000 tokens per minute" in info.value.message
    assert info.value.retry_after == pytest.approx(6.0)  # 100 more tokens at 1000/60 per s
    limiter.adjust("k", None, -500)  # the answer used 500 fewer tokens than estimated
    assert limiter.acquire("k", limit, 500).remaining_tokens == 400
    limiter.adjust("k", None, 900)  # ...and this one 900 more: a debt
    with pytest.raises(RateLimited) as info:
        limiter.acquire("k", limit, 1)
    assert info.value.retry_after == pytest.approx((1 + 500) * 60 / 1000)
    # a request bigger than the whole minute's allowance passes once the bucket is full
    clock.now += 600
    assert limiter.acquire("k", limit, 5000).remaining_tokens == 0


def test_refusal_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(rpm=2, tpm=100)
    limiter.acquire("k", limit, 90)
    with pytest.raises(RateLimited):
        limiter.acquire("k", limit, 50)  # tokens refuse: the request is not counted either
    assert limiter.acquire("k", limit, 10).remaining_requests == 0


def test_default_and_unlimited_keys_and_limit_changes() -> None:
    clock = Clock()
    limiter = RateLimiter(default_key_limit=RateLimit(rpm=1), clock=clock)
    assert limiter.acquire(None, None, 1).headers() == {}  # anonymous: not limited
    limiter.acquire("k", None, 1)
    with pytest.raises(RateLimited):
        limiter.acquire("k", None, 1)
    # the key's own limit (raised by an update) replaces the default, keeping what was used
    assert limiter.acquire("k", RateLimit(rpm=10), 1).remaining_requests == 8


def test_per_model_limits_shared_by_all_keys() -> None:
    clock = Clock()
    limiter = RateLimiter({"big": RateLimit(rpm=2, tpm=1000)}, clock=clock)
    assert limiter.acquire_model("small", 10**6) is None  # no limit
    assert limiter.acquire_model("big", 100) is None
    assert limiter.acquire_model("big", 100) is None
    wait = limiter.acquire_model("big", 100)
    assert wait == pytest.approx(30.0)
    limiter.adjust(None, "big", 700)
    clock.now += 60
    assert limiter.acquire_model("big", 100) is None


def test_format_reset() -> None:
    assert format_reset(0.0201) == "21ms"
    assert format_reset(1) == "1s"
    assert format_reset(7.51) == "7.6s"
    assert format_reset(360) == "6m0s"
    assert format_reset(61.2) == "1m2s"
    assert format_reset(59.99) == "1m0s"
