"""The servers' own queue metrics (issue 15, item 2): a real HTTP scrape of the simulated
upstream's vLLM gauges; a deployment whose server is busy with other clients' requests is
passed over with the reason in the decision, and traffic returns when it empties; unreadable
metrics fall back to in-flight counting, said once, and never fail a request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import openai
import pytest

from modelmix.adaptive.queue import parse_queue
from modelmix.config import ConfigError
from modelmix.gateway import Gateway
from tests.helpers import make_config, sim_model

VLLM = """# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="llama"} 3.0
vllm:num_requests_running{model_name="other"} 7.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="llama"} 2.0
vllm:num_requests_waiting{model_name="other"} 1.0
vllm:gpu_cache_usage_perc{model_name="llama"} 0.5
"""


def test_parse_vllm_gauges_per_model() -> None:
    assert parse_queue(VLLM, "llama") == 5
    assert parse_queue(VLLM, "other") == 8
    assert parse_queue("vllm:num_requests_waiting 4\n", "llama") == 4  # no label: the server's
    assert parse_queue("# nothing here\nprocess_cpu_seconds_total 3\n", "llama") is None


def test_queue_metrics_need_a_capacity() -> None:
    with pytest.raises(ConfigError, match=r"queue_metrics: needs a capacity"):
        make_config([sim_model("own", queue_metrics={"url": "/metrics"})])


def _config(url: str) -> Any:
    own = sim_model("own", upstream="sim-small", capacity=2, queue_metrics={"url": url})
    return make_config([own, sim_model("paid", upstream="sim-large")], [spill()])


def spill() -> dict[str, Any]:
    return {"name": "spill", "models": ["own", "paid"]}


ASK = {"model": "spill", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_server_busy_with_other_clients_is_passed_over_until_it_has_room() -> None:
    async with Gateway(_config("/metrics"), background=False) as gw:
        sim, poller = gw.simulator, gw.queues
        assert sim is not None and poller is not None
        (url,) = poller.targets
        assert url == f"{sim.url}/metrics"
        sim.load.set_capacity("sim-small", 1)
        sim.load.set_delay("sim-small", 400)
        assert await poller.poll(url) is True
        assert (await gw.chat(ASK)).record.final_model == "own"  # idle server: own GPUs
        # three requests from elsewhere: 1 running + 2 waiting >= capacity 2
        other = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="x")
        calls = [
            asyncio.create_task(
                other.chat.completions.create(
                    model="sim-small", messages=[{"role": "user", "content": "hi"}]
                )
            )
            for _ in range(3)
        ]
        # all three at the server (a fixed sleep was too short on a loaded CI machine)
        for _ in range(1000):
            if sim.load.in_flight["sim-small"] >= 3:
                break
            await asyncio.sleep(0.005)
        assert sim.load.in_flight["sim-small"] == 3
        assert await poller.poll(url) is True
        result = await gw.chat(ASK)
        assert result.record.final_model == "paid"
        (passed,) = result.record.decision["passed_over"]
        assert passed["model"] == "own"
        assert "server queue metrics: 3 running + waiting" in passed["reason"]
        await asyncio.gather(*calls)
        await other.close()
        assert await poller.poll(url) is True
        assert (await gw.chat(ASK)).record.final_model == "own"  # room again: traffic returns


async def test_unreadable_metrics_fall_back_to_in_flight_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = "http://127.0.0.1:9/metrics"  # discard port: nothing listens
    async with Gateway(_config(dead), background=False) as gw:
        poller = gw.queues
        assert poller is not None
        with caplog.at_level(logging.WARNING, logger="modelmix.adaptive"):
            assert await poller.poll(dead) is False
            assert await poller.poll(dead) is False
        warned = [r for r in caplog.records if "falling back to in-flight counting" in r.message]
        assert len(warned) == 1 and poller.failing == {dead}
        assert gw.engine.live.queued == {}
        result = await gw.chat(ASK)
        assert result.record.final_model == "own" and "passed_over" not in result.record.decision
