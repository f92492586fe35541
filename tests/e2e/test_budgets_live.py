"""Budgets and rate limits in a running gateway, driven by the real openai and anthropic SDKs.

Keys are made through the admin API; every figure checked is read back from the ledger, the
admin API, response headers or /metrics.
"""

from __future__ import annotations

import asyncio
import http.client
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from modelmix.config import parse_config
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import request_row

ADMIN = "mm-admin-budgets-e2e"
D = Decimal
HI = [{"role": "user", "content": "What is 2+2?"}]


def _config(sim: Simulator, tmp: Path) -> Any:
    def model(name: str, kind: str, upstream: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "provider": kind, "model": upstream, "base_url": sim.base_url(kind)}

    models = [
        model("gpt-4o-mini", "openai", "gpt-4o-mini"),  # $0.15 / $0.60 per M (genai-prices)
        model("claude-haiku", "anthropic", "claude-3-5-haiku-20241022"),  # $0.80 / $4
        model("gemini-flash", "gemini", "gemini-1.5-flash"),  # $0.075 / $0.30
        model("capped", "openai", "gpt-4o-mini"),  # a per-model limit of 1 request a minute
        {**model("cutter", "openai", "sim-cut"), "price": {"input": "1", "output": "1"}},
        {**model("dripping", "openai", "sim-slow40"), "price": {"input": "1", "output": "1"}},
    ]
    return parse_config(
        {
            "models": models,
            "routes": [
                {
                    "name": "quality-first",
                    "models": ["claude-haiku", "gpt-4o-mini", "gemini-flash"],
                },
                {"name": "capped-first", "models": ["capped", "gpt-4o-mini"]},
            ],
            "server": {"admin_key_env": "MM_ADMIN"},
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
            "budgets": {
                "teams": {"frugal": [{"kind": "soft", "period": "total", "limit_usd": "0.0005"}]},
                "tags": {"project:atlas": [{"kind": "hard", "period": "total", "limit_usd": "0"}]},
                "rate_limits": {"models": {"capped": {"rpm": 1}}},
            },
        }
    )


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = RunningGateway(
        _config(simulator, tmp_path_factory.mktemp("budgets")), {"MM_ADMIN": ADMIN}
    )
    yield running
    running.stop()


def call(
    gw: RunningGateway, method: str, path: str, body: Any = None, key: str = ADMIN
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    conn.request(method, path, orjson.dumps(body) if body is not None else None, headers)
    return conn.getresponse()


def admin(gw: RunningGateway, method: str, path: str, body: Any = None) -> Any:
    resp = call(gw, method, path, body)
    data = resp.read()
    assert resp.status < 300, data
    return orjson.loads(data)


def new_key(gw: RunningGateway, name: str, **settings: Any) -> tuple[str, str]:
    made = admin(gw, "POST", "/admin/keys", {"name": name, **settings})
    return made["key"], made["id"]


def oai(gw: RunningGateway, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=retries)


def claude(gw: RunningGateway, key: str, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=retries)


def budget_row(gw: RunningGateway, subject: str) -> dict[str, Any]:
    rows = admin(gw, "GET", "/admin/budgets")["data"]
    return next(r for r in rows if r["subject"] == subject)


def key_rows(gw: RunningGateway, key_id: str) -> list[dict[str, Any]]:
    gw.flush()
    with sqlite3.connect(gw.gateway.config.ledger_path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM requests WHERE key_id = ? ORDER BY started_at", (key_id,)
        ).fetchall()
    return [dict(r) for r in rows]


def test_rate_limit_headers_on_answers_and_on_429s(gw: RunningGateway) -> None:
    key, _ = new_key(gw, "rpm2", rate_limits={"rpm": 2, "tpm": 100_000})
    c = oai(gw, key)
    first = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    h = first.headers
    assert h["x-ratelimit-limit-requests"] == "2" and h["x-ratelimit-remaining-requests"] == "1"
    assert h["x-ratelimit-limit-tokens"] == "100000"
    assert int(h["x-ratelimit-remaining-tokens"]) < 100_000
    assert h["x-ratelimit-reset-requests"].endswith("s")
    second = claude(gw, key).messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=50, messages=HI
    )
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    err = info.value
    assert err.code == "rate_limit_exceeded" and "2 requests per minute" in err.message
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(err.response.headers["retry-after"]) <= 30
    with pytest.raises(anthropic.RateLimitError) as ainfo:
        claude(gw, key).messages.create(model="gpt-4o-mini", max_tokens=50, messages=HI)
    assert ainfo.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_allowed_models_are_enforced(gw: RunningGateway) -> None:
    key, _ = new_key(gw, "only-gemini", allowed_models=["gemini-*"])
    assert oai(gw, key).chat.completions.create(model="gemini-flash", messages=HI).choices
    with pytest.raises(openai.PermissionDeniedError) as info:
        oai(gw, key).chat.completions.create(model="quality-first", messages=HI)
    assert info.value.code == "model_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(gw, key).messages.create(model="gpt-4o-mini", max_tokens=10, messages=HI)


def test_hard_budget_refusal_is_not_retried_by_either_sdk(gw: RunningGateway) -> None:
    key, key_id = new_key(
        gw, "hard", budgets=[{"kind": "hard", "period": "total", "limit_usd": "0.0002"}]
    )
    c = oai(gw, key, retries=3)  # the SDK would retry an ordinary 429 three times
    answered = 0
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(50):
            c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=50)
            answered += 1
    assert time.monotonic() - started < 5  # no back-off sleeps: refused at once, not retried
    err = info.value
    assert err.code == "budget_exceeded" and "hard total budget of $0.0002" in err.message
    assert err.response.headers["x-should-retry"] == "false"
    assert err.response.headers["x-modelmix-budget"].startswith(f"key:{key_id}:hard")
    with pytest.raises(anthropic.RateLimitError) as ainfo:
        claude(gw, key, retries=3).messages.create(model="gpt-4o-mini", max_tokens=50, messages=HI)
    assert ainfo.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    rows = key_rows(gw, key_id)
    refused = [r for r in rows if r["http_status"] == 429]
    assert len(refused) == 2  # one per SDK call: neither SDK retried
    assert answered >= 2 and len(rows) == answered + 2
    spent = sum(D(r["cost_usd"]) for r in rows)
    status = budget_row(gw, key_id)
    assert D(status["spent_usd"]) == spent <= D("0.0002")
    assert D(status["reserved_usd"]) == 0


def test_concurrent_load_overspend_is_bounded_by_what_is_in_flight(gw: RunningGateway) -> None:
    """Waves of 20 concurrent requests from the async SDKs (both APIs) against a $0.002 hard
    budget: the spend stays within the limit plus what the calls in flight cost beyond their
    estimates, and the budget is used up to within one request's estimate."""
    limit = D("0.002")
    key, key_id = new_key(
        gw, "crowd", budgets=[{"kind": "hard", "period": "total", "limit_usd": str(limit)}]
    )
    prompt = [{"role": "user", "content": "Summarise the history of the bicycle in detail."}]

    async def main() -> list[str]:
        o = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        a = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)

        async def one(i: int) -> str:
            try:
                if i % 2:
                    await o.chat.completions.create(
                        model="claude-haiku",
                        messages=prompt,
                        max_tokens=60,  # type: ignore[arg-type]
                    )
                else:
                    await a.messages.create(model="claude-haiku", max_tokens=60, messages=prompt)  # type: ignore[arg-type]
                return "ok"
            except (openai.RateLimitError, anthropic.RateLimitError) as exc:
                assert "budget" in str(exc)
                return "refused"

        outcomes: list[str] = []
        try:
            for wave in range(4):  # 4 waves of 20 concurrent requests
                outcomes += await asyncio.gather(*(one(wave * 20 + i) for i in range(20)))
            return outcomes
        finally:
            await o.close()
            await a.close()

    outcomes = asyncio.run(main())
    rows = key_rows(gw, key_id)
    admitted = [r for r in rows if r["status"] == "ok"]
    assert len(admitted) == outcomes.count("ok") > 0 and outcomes.count("refused") > 0
    spent = sum(D(r["cost_usd"]) for r in rows)
    # each admitted request reserved its estimate first; the final spend can pass the limit
    # only by what the calls in flight cost *beyond* their estimates
    overrun = sum(
        max(D(r["cost_usd"]) - D(orjson.loads(r["decision"])["budget"]["reserved_usd"]), D(0))
        for r in admitted
    )
    assert spent <= limit + overrun
    print(
        f"admitted {len(admitted)}, refused {outcomes.count('refused')}, spent {spent}, "
        f"limit {limit}, overspend {max(spent - limit, D(0))}, in-flight overrun bound {overrun}"
    )
    # a last request is refused: what is left is less than its estimate (~$0.00026)
    with pytest.raises(openai.RateLimitError):
        oai(gw, key).chat.completions.create(model="claude-haiku", messages=prompt, max_tokens=60)  # type: ignore[arg-type]
    estimate = max(D(orjson.loads(r["decision"])["budget"]["reserved_usd"]) for r in admitted)
    assert spent > limit - estimate
    status = budget_row(gw, key_id)
    assert D(status["spent_usd"]) == spent and D(status["reserved_usd"]) == 0


def test_soft_budget_warns_and_degrades_routing_to_cheaper_models(gw: RunningGateway) -> None:
    key, key_id = new_key(gw, "frugal-svc", team="frugal")
    c = oai(gw, key)
    seen: list[tuple[str, str | None]] = []
    for _ in range(150):
        raw = c.chat.completions.with_raw_response.create(
            model="quality-first", messages=HI, max_tokens=40
        )
        seen.append((raw.headers["x-modelmix-model"], raw.headers.get("x-modelmix-budget-warning")))
        if seen[-1][1]:
            break
    models = [m for m, _ in seen]
    assert models[0] == "claude-haiku"  # plenty of budget: the route's first choice
    assert models[-1] == "gemini-flash"  # past the soft limit: the cheapest model
    rank = {"claude-haiku": 0, "gpt-4o-mini": 1, "gemini-flash": 2}
    assert [rank[m] for m in models] == sorted(rank[m] for m in models)  # only ever cheaper
    assert "team:frugal:soft:total: soft budget $0.0005 exceeded" in (seen[-1][1] or "")
    first_warned = next(i for i, (_, w) in enumerate(seen) if w)
    assert first_warned == len(seen) - 1  # warned once the spend had passed the limit
    rows = key_rows(gw, key_id)
    assert all(r["status"] == "ok" for r in rows)  # a soft budget never refuses
    assert all(r["team"] == "frugal" for r in rows)
    last = orjson.loads(rows[-1]["decision"])
    assert last["budget_degraded"]["dropped"] == ["claude-haiku", "gpt-4o-mini"]
    assert last["budget"]["pressure"] == 1.0 and last["budget"]["warnings"]
    team = budget_row(gw, "frugal")
    assert D(team["spent_usd"]) == sum(D(r["cost_usd"]) for r in rows) > D("0.0005")
    metrics = call(gw, "GET", "/metrics").read().decode()
    line = next(
        x
        for x in metrics.splitlines()
        if x.startswith("modelmix_budget_remaining_usd{") and "team:frugal" in x
    )
    assert 'scope="team"' in line and float(line.split()[-1]) == 0.0


def test_paced_budget_spreads_the_period(gw: RunningGateway) -> None:
    """$0.001 over a 20-second custom period: a burst gets the pro-rata share plus the
    burst allowance, then short waits the SDK retries on its own (x-should-retry: true)."""
    now = time.time()
    budget = {
        "kind": "paced",
        "period": "custom",
        "start": now - 1,
        "end": now + 19,
        "limit_usd": "0.001",
        "burst_usd": "0.00005",
    }
    key, key_id = new_key(gw, "paced", budgets=[budget])
    c = oai(gw, key)
    answered = 0
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(40):
            c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=50)
            answered += 1
    err = info.value
    assert err.code == "budget_exceeded" and "paced budget allows" in err.message
    assert err.response.headers["x-should-retry"] == "true"
    wait = int(err.response.headers["retry-after"])
    assert 1 <= wait <= 3
    assert 1 <= answered < 40  # a hard $0.001 budget would have taken all 40 (~$0.0002)
    spent = D(budget_row(gw, key_id)["spent_usd"])
    elapsed = time.time() - (now - 1)
    assert spent <= D("0.001") * D(elapsed / 20) + D("0.00005")  # never ahead of the pace
    # the SDK honours retry-after and tries again, and the grown allowance lets it through
    reply = oai(gw, key, retries=2).chat.completions.create(
        model="gpt-4o-mini", messages=HI, max_tokens=50
    )
    assert reply.choices[0].message.content


def test_per_model_limit_falls_back_then_refuses(gw: RunningGateway) -> None:
    c = oai(gw, ADMIN)  # the admin key is a client key too (no limits of its own)
    first = c.chat.completions.with_raw_response.create(model="capped-first", messages=HI)
    assert first.headers["x-modelmix-model"] == "capped"
    second = c.chat.completions.with_raw_response.create(model="capped-first", messages=HI)
    assert second.headers["x-modelmix-model"] == "gpt-4o-mini"  # capped is at its limit
    gw.flush()
    decision = orjson.loads(
        request_row(gw.gateway.config.ledger_path, second.headers["x-modelmix-request-id"])[
            "decision"
        ]
    )
    assert decision["rate_limited"] == ["capped"]
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="capped", messages=HI)
    assert "Model capped is over its rate limit" in info.value.message
    assert info.value.response.headers["x-ratelimit-limit-requests"] == "1"


def test_spend_is_attributed_to_team_and_tags_and_tag_budgets_apply(gw: RunningGateway) -> None:
    # allowed_tags: a budgeted tag counts only for keys that may set it (docs/security.md)
    key, key_id = new_key(
        gw, "attributed", team="search", tags=["prod"], allowed_tags=["project:*"]
    )
    c = oai(gw, key)
    c.chat.completions.create(
        model="gpt-4o-mini",
        messages=HI,
        metadata={"feature": "faq"},
        user="u-17",
        extra_headers={"x-modelmix-tag-env": "staging"},
    )
    (row,) = key_rows(gw, key_id)
    assert row["team"] == "search"
    assert orjson.loads(row["tags"]) == ["prod", "feature:faq", "env:staging", "user:u-17"]
    assert row["cost_confidence"] == "exact"
    # project:atlas has a $0 hard budget: tagged requests are refused, others are not
    with pytest.raises(anthropic.RateLimitError) as info:
        claude(gw, key).messages.create(
            model="gpt-4o-mini",
            max_tokens=10,
            messages=HI,
            extra_headers={"x-modelmix-tag-project": "atlas"},
        )
    assert "tag 'project:atlas'" in info.value.message
    refused = key_rows(gw, key_id)[-1]  # the refusal is in the ledger, attributed too
    assert refused["http_status"] == 429 and refused["team"] == "search"
    assert "project:atlas" in orjson.loads(refused["tags"])
    # a key not allowed the tag is neither refused by its budget nor attributed to it
    other, other_id = new_key(gw, "not-atlas", team="search")
    claude(gw, other).messages.create(
        model="gpt-4o-mini",
        max_tokens=10,
        messages=HI,
        extra_headers={"x-modelmix-tag-project": "atlas"},
    )
    (row,) = key_rows(gw, other_id)
    assert "project:atlas" not in orjson.loads(row["tags"])
    assert orjson.loads(row["decision"])["tags_not_allowed"] == ["project:atlas"]


def test_streams_settle_at_their_end_however_they_end(gw: RunningGateway) -> None:
    key, key_id = new_key(
        gw, "streamer", budgets=[{"kind": "hard", "period": "total", "limit_usd": "5"}]
    )
    c = oai(gw, key)
    # a whole stream: settled at its real cost
    stream = c.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    assert "4" in "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    (whole,) = key_rows(gw, key_id)
    assert D(whole["cost_usd"]) > 0 and whole["cost_confidence"] == "exact"
    assert D(budget_row(gw, key_id)["spent_usd"]) == D(whole["cost_usd"])
    # cut by the upstream before it reported usage: charged an estimate, flagged as one
    long = [{"role": "user", "content": "Tell me a long story about a cat and a dog"}]
    with pytest.raises(openai.APIError):
        for _ in c.chat.completions.create(model="cutter", messages=long, stream=True):
            pass
    # the client hangs up mid-stream
    body = {"model": "dripping", "messages": long, "stream": True}
    resp = call(gw, "POST", "/v1/chat/completions", body, key=key)
    assert resp.status == 200 and resp.read1(1024)  # the first bytes of the answer
    resp.close()  # ...and hang up
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = key_rows(gw, key_id)
        if len(rows) == 3:
            break
        time.sleep(0.05)
    _, cut, hung_up = rows
    assert cut["status"] == "error" and hung_up["status"] == "client_closed"
    for r in (cut, hung_up):
        assert r["cost_confidence"] == "estimated" and D(r["cost_usd"]) > 0
        assert r["prompt_tokens"] > 0
    status = budget_row(gw, key_id)
    assert D(status["spent_usd"]) == sum(D(r["cost_usd"]) for r in rows)
    assert D(status["reserved_usd"]) == 0


def test_stored_responses_and_their_input_items_are_the_creating_keys(gw: RunningGateway) -> None:
    mine, _ = new_key(gw, "responses-owner")
    theirs, _ = new_key(gw, "responses-other")
    made = oai(gw, mine).responses.create(model="gpt-4o-mini", input="What is 2+2?")
    items = oai(gw, mine).responses.input_items.list(made.id)
    assert [i.type for i in items.data] == ["message"]
    with pytest.raises(openai.NotFoundError):
        oai(gw, theirs).responses.input_items.list(made.id)
    with pytest.raises(openai.NotFoundError):
        oai(gw, theirs).responses.retrieve(made.id)
