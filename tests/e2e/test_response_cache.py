"""The response cache through the HTTP API with the real openai SDK: exact hits as JSON and as
streams, temperature > 0 only when asked, per-key isolation, the semantic look-up on the route
that opts in, and the Redis backend shared by two gateways."""

from __future__ import annotations

import asyncio
import http.client
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from modelmix.reports import build_report
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway, e2e_config
from tests.state.redis_server import RedisServer

MESSAGES = [{"role": "user", "content": "What is the boiling point of water at sea level?"}]


def _cache_config(**extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "semantic": {"routes": ["to-claude"], "threshold": 0.9},
        **extra,
    }


def _gateway(sim: Simulator, tmp: Path, **extra: Any) -> RunningGateway:
    return RunningGateway(e2e_config(sim, tmp, **extra), env={"MM_ADMIN": "mm-admin-cache"})


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = _gateway(
        simulator,
        tmp_path_factory.mktemp("cache"),
        cache=_cache_config(),
        server={"admin_key_env": "MM_ADMIN"},
    )
    yield running
    running.stop()


def _client(gw: RunningGateway, key: str = "mm-admin-cache") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def _row(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    gw.flush()
    conn = sqlite3.connect(gw.gateway.config.ledger_path)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    conn.close()
    assert row is not None
    out = dict(row)
    out["decision"] = orjson.loads(out["decision"])
    return out


def _ask(client: openai.OpenAI, **kw: Any) -> tuple[str, str, str]:
    """(answer text, request id, cost header) of one non-streamed call."""
    raw = client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=kw.pop("messages", MESSAGES), **kw
    )
    answer = raw.parse()
    return (
        answer.choices[0].message.content or "",
        raw.headers["x-modelmix-request-id"],
        raw.headers.get("x-modelmix-cost-usd", ""),
    )


def test_exact_hit_json_is_a_free_ledger_row(gw: RunningGateway) -> None:
    client = _client(gw)
    messages = [{"role": "user", "content": "Exact hit, please: name three rivers."}]
    first, first_id, first_cost = _ask(client, messages=messages, temperature=0)
    again, again_id, again_cost = _ask(client, messages=messages, temperature=0)
    assert again == first and again_id != first_id
    assert Decimal(first_cost) > 0 and Decimal(again_cost) == 0
    made, hit = _row(gw, first_id), _row(gw, again_id)
    assert "cache" not in made["decision"] and made["saved_usd"] is None
    assert hit["decision"]["cache"] == {"hit": "exact", "from": first_id}
    assert hit["status"] == "ok" and hit["n_attempts"] == 0
    assert Decimal(hit["cost_usd"]) == 0
    assert Decimal(hit["saved_usd"]) == Decimal(made["cost_usd"]) > 0
    assert hit["final_model"] == made["final_model"] == "gpt-4o-mini"


def test_streams_are_served_from_the_cache_as_streams(gw: RunningGateway) -> None:
    client = _client(gw)
    messages = [{"role": "user", "content": "Stream me a cached haiku about rain."}]
    first, first_id, _ = _ask(client, messages=messages, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, temperature=0, stream=True
        )  # type: ignore[call-overload]
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first
    assert chunks[-1].choices[0].finish_reason == "stop"
    gw.flush()
    conn = sqlite3.connect(gw.gateway.config.ledger_path)
    (hits,) = conn.execute(
        "SELECT count(*) FROM requests WHERE stream = 1 AND cost_usd = '0' AND decision LIKE ?",
        (f'%"from":"{first_id}"%',),
    ).fetchone()
    conn.close()
    assert hits == 1  # the stream's ledger row: a free hit made from the JSON answer
    # and a streamed answer is kept for the next (non-streamed) request
    messages2 = [{"role": "user", "content": "A streamed answer, kept for later."}]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="gpt-4o-mini", messages=messages2, temperature=0, stream=True
        )  # type: ignore[call-overload]
        if c.choices
    )
    for _ in range(100):  # the store runs in a task after the stream ended
        again, again_id, cost = _ask(client, messages=messages2, temperature=0)
        if Decimal(cost) == 0:
            break
    assert again == streamed
    assert _row(gw, again_id)["decision"]["cache"]["hit"] == "exact"


def test_anthropic_sdk_gets_hits_in_its_own_format(gw: RunningGateway) -> None:
    """/v1/messages: a JSON answer, then the same request streamed from the cache."""
    client = anthropic.Anthropic(base_url=gw.url, api_key="mm-admin-cache", max_retries=0)
    messages: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": "Anthropic wire, cached: what is 9+9?"}
    ]
    raw = client.messages.with_raw_response.create(
        model="to-claude", max_tokens=200, messages=messages, extra_body={"temperature": 0}
    )
    first = raw.parse()
    assert Decimal(raw.headers["x-modelmix-cost-usd"]) > 0
    with client.messages.stream(
        model="to-claude", max_tokens=200, messages=messages, extra_body={"temperature": 0}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == first.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    gw.flush()
    conn = sqlite3.connect(gw.gateway.config.ledger_path)
    (hits,) = conn.execute(
        "SELECT count(*) FROM requests WHERE api = 'anthropic' AND stream = 1 "
        "AND cost_usd = '0' AND decision LIKE ?",
        (f'%"from":"{raw.headers["x-modelmix-request-id"]}"%',),
    ).fetchone()
    conn.close()
    assert hits == 1


def test_temperature_above_zero_is_cached_only_when_asked(gw: RunningGateway) -> None:
    client = _client(gw)
    messages = [{"role": "user", "content": "Be creative about clouds."}]
    ids = [_ask(client, messages=messages, temperature=0.7)[1] for _ in range(2)]
    assert all("cache" not in _row(gw, i)["decision"] for i in ids)
    no_temp = [{"role": "user", "content": "No temperature given: the provider default."}]
    ids = [_ask(client, messages=no_temp)[1] for _ in range(2)]
    assert all("cache" not in _row(gw, i)["decision"] for i in ids)
    forced = {"x-modelmix-cache": "force"}
    first, _, _ = _ask(client, messages=messages, temperature=0.7, extra_headers=forced)
    again, again_id, _ = _ask(client, messages=messages, temperature=0.7, extra_headers=forced)
    assert again == first and _row(gw, again_id)["decision"]["cache"]["hit"] == "exact"
    skipped = _ask(
        client, messages=messages, temperature=0.7, extra_headers={"x-modelmix-cache": "skip"}
    )
    assert "cache" not in _row(gw, skipped[1])["decision"]


def test_keys_do_not_share_answers(gw: RunningGateway) -> None:
    keys = gw.gateway.keys
    assert keys is not None
    _, a = keys.create("cache-a")
    _, b = keys.create("cache-b")
    messages = [{"role": "user", "content": "Per-key isolation: what is 2 + 2?"}]
    _ask(_client(gw, a), messages=messages, temperature=0)
    _, b_id, b_cost = _ask(_client(gw, b), messages=messages, temperature=0)
    assert Decimal(b_cost) > 0 and "cache" not in _row(gw, b_id)["decision"]
    _, a_id, _ = _ask(_client(gw, a), messages=messages, temperature=0)
    assert _row(gw, a_id)["decision"]["cache"]["hit"] == "exact"


def test_semantic_hits_only_on_the_route_that_opts_in(gw: RunningGateway) -> None:
    client = _client(gw)
    asked = [{"role": "user", "content": "How do I reset my password on the support portal?"}]
    close = [{"role": "user", "content": "how do I reset my password on the support portal"}]
    first, first_id, _ = _ask(client, model="to-claude", messages=asked, temperature=0)
    for _ in range(100):  # stored in a task
        again, again_id, cost = _ask(client, model="to-claude", messages=close, temperature=0)
        if Decimal(cost) == 0:
            break
    assert again == first
    cache = _row(gw, again_id)["decision"]["cache"]
    assert cache["hit"] == "semantic" and cache["from"] == first_id
    assert 0.9 <= cache["similarity"] < 1.0
    far = [{"role": "user", "content": "Which river is the longest in Europe?"}]
    _, far_id, far_cost = _ask(client, model="to-claude", messages=far, temperature=0)
    assert Decimal(far_cost) > 0 and "cache" not in _row(gw, far_id)["decision"]
    # gpt-4o-mini did not opt in: a near-identical prompt is a miss there
    _ask(client, model="gpt-4o-mini", messages=asked, temperature=0)
    _, near_id, near_cost = _ask(client, model="gpt-4o-mini", messages=close, temperature=0)
    assert Decimal(near_cost) > 0 and "cache" not in _row(gw, near_id)["decision"]


def test_redis_cache_is_shared_by_replicas(
    simulator: Simulator, tmp_path: Path, redis_server: RedisServer
) -> None:
    state = {"redis_url": redis_server.url}
    one = _gateway(simulator, tmp_path / "a", state=state, cache=_cache_config(scope="shared"))
    two = _gateway(simulator, tmp_path / "b", state=state, cache=_cache_config(scope="shared"))
    try:
        messages = [{"role": "user", "content": "Shared by replicas: name a prime number."}]
        first, first_id, _ = _ask(_client(one), messages=messages, temperature=0)
        for _ in range(100):
            again, again_id, cost = _ask(_client(two), messages=messages, temperature=0)
            if Decimal(cost) == 0:
                break
        assert again == first
        assert _row(two, again_id)["decision"]["cache"] == {"hit": "exact", "from": first_id}

        async def streamed() -> str:
            client = openai.AsyncOpenAI(base_url=f"{two.url}/v1", api_key="x", max_retries=0)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                temperature=0,
                stream=True,  # type: ignore[arg-type]
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            await client.close()
            return text

        assert asyncio.run(streamed()) == first
        # Redis down: the cache is a miss, never an error
        redis_server.stop()
        down, _, cost = _ask(_client(two), messages=messages, temperature=0)
        assert Decimal(cost) > 0 and down
        store = two.gateway.cache.store  # type: ignore[union-attr]
        assert store.down  # not tried again for a second: no timeout per request
        redis_server.start()  # back (empty): the cache works again
        time.sleep(1.1)
        _ask(_client(two), messages=messages, temperature=0)
        for _ in range(100):
            _, again_id, cost = _ask(_client(two), messages=messages, temperature=0)
            if Decimal(cost) == 0:
                break
        assert _row(two, again_id)["decision"]["cache"]["hit"] == "exact"
    finally:
        one.stop()
        two.stop()


def test_report_and_dashboard_show_the_savings(gw: RunningGateway) -> None:
    """(After the tests above, which made hits.) ``modelmix report`` and the dashboard."""
    client = _client(gw)
    messages = [{"role": "user", "content": "Report me: one cached answer."}]
    _ask(client, messages=messages, temperature=0)
    _ask(client, messages=messages, temperature=0)
    gw.flush()
    path = gw.gateway.config.ledger_path
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT saved_usd FROM requests WHERE saved_usd IS NOT NULL").fetchall()
    conn.close()
    expected = sum(Decimal(s) for (s,) in rows)
    assert len(rows) >= 5 and expected > 0
    report = build_report(path)["response_cache"]
    assert report["hits"] == len(rows) and report["saved_usd"] == expected
    assert report["semantic"] >= 1 and report["exact"] == len(rows) - report["semantic"]
    config = path.parent / "report.yaml"
    config.write_text(f"ledger: {{path: '{path}'}}\n")
    shown = subprocess.run(
        [sys.executable, "-m", "modelmix", "report", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"response cache: {len(rows):,} hits" in shown
    conn_http = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn_http.request("GET", "/ui?range=24h", headers={"authorization": "Bearer mm-admin-cache"})
    page = conn_http.getresponse().read().decode()
    conn_http.close()
    assert "Cache hits" in page and f">{len(rows):,}<" in page
