"""A provider that speaks an existing wire format is one registry entry: registered here, it
serves real SDK calls through a running gateway against the simulated upstream, with its
default URL, key variable, telemetry names and stream framing taken from its spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from modelmix.config import parse_config
from modelmix.providers.specs import FRAMINGS, PROVIDERS, ProviderSpec, register_provider
from modelmix.providers.sse import SSEDecoder
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway

DECODERS: list[SSEDecoder] = []


def _counting_decoder() -> SSEDecoder:
    decoder = SSEDecoder()
    DECODERS.append(decoder)
    return decoder


@pytest.fixture(scope="module")
def acme(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    FRAMINGS["counted-sse"] = _counting_decoder
    register_provider(
        ProviderSpec(
            "acme",
            "openai",
            simulator.base_url("openai"),
            "ACME_API_KEY",
            telemetry=("acme", "acme"),
            framing="counted-sse",
        )
    )
    tmp: Path = tmp_path_factory.mktemp("acme")
    config = parse_config(
        {
            "models": [{"name": "acme-chat", "provider": "acme", "model": "gpt-4o-mini"}],
            "ledger": {"path": str(tmp / "ledger.db")},
        }
    )
    running = RunningGateway(config, env={"ACME_API_KEY": "acme-secret"})
    try:
        yield running
    finally:
        running.stop()
        del PROVIDERS["acme"], FRAMINGS["counted-sse"]


def test_a_registered_provider_serves_calls_and_streams(
    acme: RunningGateway, simulator: Simulator
) -> None:
    client = openai.OpenAI(base_url=acme.url + "/v1", api_key="x", max_retries=0)
    answer = client.chat.completions.create(
        model="acme-chat", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert answer.choices[0].message.content
    sent = simulator.requests[-1]
    assert sent.path == "/openai/v1/chat/completions"  # the spec's default URL
    assert sent.headers["Authorization"] == "Bearer acme-secret"  # the spec's key variable
    before = len(DECODERS)
    stream = client.chat.completions.create(
        model="acme-chat", messages=[{"role": "user", "content": "Say hello"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert len(DECODERS) == before + 1  # the stream was framed by the spec's decoder


def test_a_provider_spec_must_name_a_known_adapter_and_framing() -> None:
    with pytest.raises(ValueError, match="unknown wire adapter"):
        register_provider(ProviderSpec("x", "smoke-signals", "http://x"))
    with pytest.raises(ValueError, match="unknown stream framing"):
        register_provider(ProviderSpec("x", "openai", "http://x", framing="carrier-pigeon"))
    assert "x" not in PROVIDERS
