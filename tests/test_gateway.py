"""The gateway as a library: no server, same engine, same records."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelmix.cli.ledger_cmds import logs
from modelmix.defaults import default_config
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway


async def test_library_chat_returns_answer_and_record(tmp_path: Path) -> None:
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path)})
    async with Gateway(config, env={}) as gw:
        result = await gw.chat(
            {"model": "demo-fallback", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        )
        assert "4" in (result.response.content or "")
        record = result.record
        assert record.route == "demo-fallback" and record.final_model == "sim-small"
        # default engine: one retry of the failing model, then the fallback answers
        assert [a.status for a in record.attempts] == ["error", "error", "ok"]
        # sim-small's made-up price: $0.10 in / $0.40 out per million tokens
        usage = result.response.usage
        expected = (
            Decimal("0.10") * usage.prompt_tokens + Decimal("0.40") * usage.completion_tokens
        ) / 1_000_000
        assert record.cost_usd == expected
        assert record.decision["candidates"][0]["model"] == "sim-unreliable"

        stream = await gw.chat_stream(
            {"model": "sim-small", "messages": [{"role": "user", "content": "What is 3+3?"}]}
        )
        text = "".join([d.content or "" async for d in stream])
        assert "6" in text

        hard = await gw.chat(
            {
                "model": "smart",
                "messages": [
                    {
                        "role": "user",
                        "content": "Let $f(x)=\\frac{x^3-2x}{x^2+1}$. Find all real $c$ such "
                        "that $f(f(c))=c$ and prove the set is finite. Present your answer in "
                        "the json format.",
                    }
                ],
            }
        )
        easy = await gw.chat(
            {"model": "smart", "messages": [{"role": "user", "content": "Say hi."}]}
        )
        for routed in (hard, easy):
            decision = routed.record.decision
            assert decision["strategy"] == "learned"
            assert decision["chosen"] == routed.record.final_model
        p_hard = {c["model"]: c["p_good"] for c in hard.record.decision["candidates"]}
        p_easy = {c["model"]: c["p_good"] for c in easy.record.decision["candidates"]}
        assert p_hard["sim-small"] < p_easy["sim-small"]  # the harder prompt looks harder

        with pytest.raises(GatewayError) as info:
            await gw.chat({"model": "missing", "messages": [{"role": "user", "content": "x"}]})
        assert info.value.status == 404
    assert (tmp_path / "ledger.db").exists()


async def test_library_without_ledger(tmp_path: Path) -> None:
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path)})
    async with Gateway(config, env={}, ledger=False) as gw:
        result = await gw.chat(
            {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert result.response.content
    assert not (tmp_path / "ledger.db").exists()


async def test_bad_requests_get_400s_and_leave_models_healthy() -> None:
    """The audit's repro: requests a model cannot take are refused with a 400 before any
    upstream call, however often they come, and the model keeps serving good requests."""
    bad = [
        {"model": "sim-medium", "messages": [{"role": "system", "content": "x"}]},
        {
            "model": "sim-large",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}
                    ],
                }
            ],
        },
    ]
    async with Gateway(default_config({}), env={}, ledger=False) as gw:
        for body in bad:
            for _ in range(4):  # more than the cool-down threshold (3)
                with pytest.raises(GatewayError) as info:
                    await gw.chat(body)
                assert info.value.status == 400 and info.value.code == "no_capable_model"
                assert body["model"] in info.value.message
            good = {"model": body["model"], "messages": [{"role": "user", "content": "hi"}]}
            result = await gw.chat(good)
            assert result.response.content and result.record.final_model == body["model"]


async def test_a_model_cooling_down_is_shown_skipped_in_the_ledger(tmp_path: Path) -> None:
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path)})
    hi = {"model": "demo-fallback", "messages": [{"role": "user", "content": "hi"}]}
    async with Gateway(config, env={}) as gw:
        # sim-unreliable fails twice, then once more: three in a row and it rests 30 s
        chains = [[a.model for a in (await gw.chat(hi)).record.attempts] for _ in range(3)]
        assert chains == [
            ["sim-unreliable", "sim-unreliable", "sim-small"],
            ["sim-unreliable", "sim-small"],
            ["sim-small"],
        ]
        assert gw.ledger is not None
        gw.ledger.flush()
    out = CliRunner().invoke(logs, ["--db", str(tmp_path / "ledger.db")]).output
    assert out.count("sim-unreliable:cooling down -> sim-small:ok") == 1
    assert out.count("sim-unreliable:500 -> sim-small:ok") == 2


async def test_timeouts_apply_to_each_upstream_attempt() -> None:
    from tests.helpers import make_config, sim_model

    config = make_config(
        [sim_model("stuck", upstream="sim-timeout"), sim_model("quick", upstream="sim-small")],
        [{"name": "chain", "models": ["stuck", "quick"]}],
        engine={"retries": 1, "backoff_base": 0.0, "timeouts": {"total": 0.3}},
    )
    async with Gateway(config, env={}, ledger=False) as gw:
        result = await gw.chat({"model": "chain", "messages": [{"role": "user", "content": "hi"}]})
    record = result.record
    assert [(a.model, a.error_kind) for a in record.attempts] == [
        ("stuck", "timeout"),
        ("stuck", "timeout"),
        ("quick", None),
    ]
    for attempt in record.attempts[:2]:  # each attempt gets the whole budget, no more
        assert attempt.latency_ms is not None and 300 <= attempt.latency_ms < 600
    assert record.latency_ms is not None and record.latency_ms >= 600  # the request: longer


HARD_PROMPT = (
    "Let $f(x)=\\frac{x^3-2x}{x^2+1}$. Find all real $c$ such that $f(f(c))=c$ and prove the "
    "set is finite. Present your answer in the json format."
)


async def test_library_calls_are_budgeted_like_http_ones(tmp_path: Path) -> None:
    """Gateway.chat with a key: allowed models, rate limits, hard budgets and soft budgets
    steering the learned route, exactly as over HTTP."""
    from modelmix.budgets.config import BudgetsConfig

    budgets = BudgetsConfig.model_validate(
        {"teams": {"lab": [{"kind": "soft", "period": "total", "limit_usd": "0.0000001"}]}}
    )
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path), "budgets": budgets})
    async with Gateway(config, env={}) as gw:
        assert gw.keys is not None
        free, _ = gw.keys.create("free")
        lab, _ = gw.keys.create(
            "lab",
            team="lab",
            allowed_models=["smart", "sim-small"],
            budgets=[{"kind": "hard", "period": "total", "limit_usd": "0.01"}],
            rate_limit={"rpm": 3},
        )
        # a hard budget reserves a request's worst case: max_tokens keeps it within $0.01
        ask = {
            "model": "smart",
            "messages": [{"role": "user", "content": HARD_PROMPT}],
            "max_tokens": 300,
        }
        unbudgeted = await gw.chat(ask, key_id=free.id)
        assert "budget_degraded" not in unbudgeted.record.decision
        degraded = await gw.chat(ask, key_id=lab.id)  # the team's soft budget is tiny
        decision = degraded.record.decision
        assert decision["budget_degraded"]["pressure"] == 1.0
        assert decision["budget_degraded"]["quality_target"] < 0.95
        assert decision["budget_degraded"]["undegraded_choice"] == unbudgeted.record.final_model
        price = {
            name: entry.deployments[0].price.output_token  # type: ignore[union-attr]
            for name, entry in gw.portfolio.items()
            if entry.deployments
        }
        assert price[degraded.record.final_model] < price[unbudgeted.record.final_model]
        assert degraded.warnings == []  # nothing spent yet: full pressure, but not passed
        assert degraded.record.team == "lab"
        with pytest.raises(GatewayError) as info:
            await gw.chat({**ask, "model": "sim-large"}, key_id=lab.id)
        assert info.value.status == 403 and info.value.code == "model_not_allowed"
        small = await gw.chat({**ask, "model": "sim-small"}, key_id=lab.id)
        third = await gw.chat({**ask, "model": "sim-small"}, key_id=lab.id)
        assert small.warnings and "team:lab:soft:total: soft budget" in small.warnings[0]
        with pytest.raises(GatewayError) as info:  # the 4th admitted this minute (rpm 3)
            await gw.chat(ask, key_id=lab.id)
        assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
        (key_budget,) = [b for b in gw.accounting.status() if b["scope"] == "key"]
        spent = degraded.record.cost_usd + small.record.cost_usd + third.record.cost_usd
        assert key_budget["spent_usd"] == spent


def test_request_ids_are_unique_and_grow_with_time() -> None:
    import re
    import time

    from modelmix.gateway import new_request_id

    first = [new_request_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_request_id()
    assert len(set(first)) == 1000
    assert all(re.fullmatch(r"mm-[0-9a-f]{24}", i) for i in first)
    # the leading 48 bits are milliseconds: an id made later sorts after every earlier one
    assert later > max(first)
    assert abs(int(later[3:15], 16) / 1000 - time.time()) < 5
