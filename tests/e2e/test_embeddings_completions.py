"""``/v1/embeddings`` and the legacy ``/v1/completions`` with the real openai SDK, through a
running gateway in front of the simulated upstream (OpenAI and Gemini wire formats)."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from modelmix.config import Config, parse_config
from modelmix.gateway import Gateway
from modelmix.simulated import Simulator
from modelmix.simulated.vectors import vector
from modelmix.tokens import count_tokens
from tests.e2e import plain_http as httpx
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import attempt_rows, request_row

PRICE = Decimal("0.02")  # USD per 1M input tokens


def _config(sim: Simulator, tmp: Path) -> Config:
    def embed(name: str, kind: str, upstream: str, **kw: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": kind,
            "model": upstream,
            "kind": "embedding",
            "base_url": sim.base_url(kind),
            "price": {"input": str(PRICE)},
            **kw,
        }

    return parse_config(
        {
            "models": [
                embed("embed-small", "openai", "sim-embed-d64", dimensions=64),
                embed("embed-gemini", "gemini", "sim-embed-d32"),
                embed("embed-broken", "openai", "sim-embed-500"),
                {
                    "name": "chat",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "base_url": sim.base_url("openai"),
                },
            ],
            "routes": [
                {"name": "embed", "models": ["embed-broken", "embed-gemini"]},
                {"name": "text", "models": ["chat"]},
            ],
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
            "engine": {"retries": 0, "backoff_base": 0.01, "backoff_max": 0.02},
            "budgets": {
                "tags": {
                    "project:atlas": [{"kind": "hard", "period": "total", "limit_usd": "0"}],
                    "project:rag": [{"kind": "hard", "period": "total", "limit_usd": "1"}],
                }
            },
        }
    )


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = RunningGateway(_config(simulator, tmp_path_factory.mktemp("embed")), env={})
    yield running
    running.stop()


def client(gw: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1", api_key="anything", max_retries=0, default_headers=headers
    )


def _close(a: list[float], b: list[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def test_string_input_float_vectors_ledger_and_cost(gw: RunningGateway) -> None:
    raw = client(gw).embeddings.with_raw_response.create(
        model="embed-small", input="the cat sat on the mat", encoding_format="float"
    )
    result = raw.parse()
    assert result.model == "embed-small"
    assert len(result.data) == 1
    assert _close(result.data[0].embedding, vector("the cat sat on the mat", 64))
    tokens = count_tokens("the cat sat on the mat")
    assert result.usage.prompt_tokens == tokens == result.usage.total_tokens

    rid = raw.headers["x-modelmix-request-id"]
    gw.flush()
    row = request_row(gw.gateway.config.ledger_path, rid)
    assert row["api"] == "embeddings" and row["status"] == "ok"
    assert row["final_model"] == "embed-small" and row["requested_model"] == "embed-small"
    assert row["prompt_tokens"] == tokens and row["completion_tokens"] == 0
    expected = PRICE * tokens / 1_000_000
    assert Decimal(str(row["cost_usd"])) == expected
    assert Decimal(raw.headers["x-modelmix-cost-usd"]) == expected
    assert row["cost_confidence"] == "exact"


def test_list_input_base64_by_default(gw: RunningGateway) -> None:
    """The SDK asks for base64 unless told otherwise and decodes it itself."""
    texts = ["alpha", "beta", "gamma"]
    http = httpx.post(
        gw.url + "/v1/embeddings",
        json={"model": "embed-small", "input": texts, "encoding_format": "base64"},
    )
    assert http.status_code == 200
    item = http.json()["data"][1]
    raw = base64.b64decode(item["embedding"])
    assert _close(list(struct.unpack(f"<{len(raw) // 4}f", raw)), vector("beta", 64))

    result = client(gw).embeddings.create(model="embed-small", input=texts)
    assert [d.index for d in result.data] == [0, 1, 2]
    for text, item in zip(texts, result.data, strict=True):
        assert _close(item.embedding, vector(text, 64))


def test_route_falls_back_to_gemini_batch_embed(gw: RunningGateway, simulator: Simulator) -> None:
    raw = client(gw).embeddings.with_raw_response.create(
        model="embed", input=["one", "two"], dimensions=16
    )
    result = raw.parse()
    assert _close(result.data[1].embedding, vector("two", 16))
    assert raw.headers["x-modelmix-model"] == "embed-gemini"
    sent = [r for r in simulator.requests if r.path.endswith(":batchEmbedContents")][-1]
    assert sent.body["requests"][0] == {
        "model": "models/sim-embed-d32",
        "outputDimensionality": 16,
        "content": {"parts": [{"text": "one"}]},
    }
    gw.flush()
    rid = raw.headers["x-modelmix-request-id"]
    row = request_row(gw.gateway.config.ledger_path, rid)
    assert row["route"] == "embed"
    attempts = attempt_rows(gw.gateway.config.ledger_path, rid)
    assert [(a["model"], a["status"], a["http_status"]) for a in attempts] == [
        ("embed-broken", "error", 500),
        ("embed-gemini", "ok", None),
    ]
    # Gemini reports no usage: counted with cl100k, and the cost says it is an estimate
    assert row["prompt_tokens"] == count_tokens("one") + count_tokens("two")
    assert row["cost_confidence"] == "estimated"


def test_errors_in_openai_format(gw: RunningGateway) -> None:
    c = client(gw)
    with pytest.raises(openai.NotFoundError) as missing:
        c.embeddings.create(model="nope", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as chat_model:
        c.embeddings.create(model="chat", input="x")
    assert chat_model.value.code == "model_not_embedding"
    with pytest.raises(openai.BadRequestError) as empty:
        c.embeddings.create(model="embed-small", input=[])
    assert empty.value.param == "input"
    with pytest.raises(openai.BadRequestError) as mixed:
        c.embeddings.create(model="embed-small", input=["text", [1, 2, 3]])  # type: ignore[list-item]
    assert mixed.value.param == "input[1]"
    with pytest.raises(openai.BadRequestError) as not_cl100k:
        c.embeddings.create(model="embed-small", input=[[999_999_999]])
    assert not_cl100k.value.param == "input[0]"
    with pytest.raises(openai.InternalServerError):
        c.embeddings.create(model="embed-broken", input="x")


def test_budgets_apply_to_embeddings(gw: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        client(gw, **{"x-modelmix-tag-project": "atlas"}).embeddings.create(
            model="embed-small", input="refused by a zero budget"
        )
    assert "budget" in str(refused.value).lower()
    before = _spent(gw, "project:rag")
    client(gw, **{"x-modelmix-tag-project": "rag"}).embeddings.create(
        model="embed-small", input="counted against the rag budget"
    )
    tokens = count_tokens("counted against the rag budget")
    assert _spent(gw, "project:rag") - before == PRICE * tokens / 1_000_000


def _spent(gw: RunningGateway, subject: str) -> Decimal:
    row = next(r for r in gw.gateway.accounting.status() if r["subject"] == subject)
    return Decimal(str(row["spent_usd"]))


def test_library_embed(simulator: Simulator, tmp_path: Path) -> None:
    async def main() -> Any:
        async with Gateway(_config(simulator, tmp_path), env={}) as gateway:
            return await gateway.embed({"model": "embed-small", "input": ["library"]})

    result = asyncio.run(main())
    assert _close(result.response.vectors[0], vector("library", 64))
    assert result.record.api == "embeddings" and result.record.cost_usd > 0
    assert request_row(tmp_path / "ledger.db", result.record.id)["final_model"] == "embed-small"


# -- legacy completions -------------------------------------------------------------------


def test_completions_json_string_and_list_prompt(gw: RunningGateway) -> None:
    c = client(gw)
    for prompt in ("What is 2+2?", ["What is 2+2?"]):
        raw = c.completions.with_raw_response.create(model="text", prompt=prompt, max_tokens=50)
        done = raw.parse()
        assert done.object == "text_completion"
        assert "4" in done.choices[0].text
        assert done.choices[0].finish_reason == "stop"
        assert done.usage is not None and done.usage.prompt_tokens > 0
        gw.flush()
        row = request_row(gw.gateway.config.ledger_path, raw.headers["x-modelmix-request-id"])
        assert row["api"] == "completions" and row["route"] == "text"
        assert row["final_model"] == "chat" and Decimal(str(row["cost_usd"])) > 0


def test_completions_stream(gw: RunningGateway) -> None:
    chunks = list(
        client(gw).completions.create(
            model="text",
            prompt="What is 2+2?",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "4" in text
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "text_completion" for c in chunks)


def test_completions_refusals(gw: RunningGateway) -> None:
    c = client(gw)
    with pytest.raises(openai.BadRequestError) as echo:
        c.completions.create(model="text", prompt="hi", echo=True)
    assert echo.value.param == "echo"
    with pytest.raises(openai.BadRequestError) as many:
        c.completions.create(model="text", prompt=["a", "b"])
    assert many.value.param == "prompt"
    with pytest.raises(openai.RateLimitError):
        client(gw, **{"x-modelmix-tag-project": "atlas"}).completions.create(
            model="text", prompt="hi"
        )


def test_chat_and_completions_refuse_embedding_models(gw: RunningGateway) -> None:
    c = client(gw)
    for model in ("embed-small", "embed"):
        with pytest.raises(openai.BadRequestError) as chat:
            c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert chat.value.code == "model_not_chat"
        with pytest.raises(openai.BadRequestError) as legacy:
            c.completions.create(model=model, prompt="hi")
        assert legacy.value.code == "model_not_chat"


def test_token_array_inputs_as_langchain_sends_them(
    gw: RunningGateway, simulator: Simulator
) -> None:
    """cl100k token arrays go to an OpenAI-compatible upstream as sent, and to Gemini as
    their text: either way the vector is the text's."""
    from modelmix.tokens import _encoding

    arrays = [_encoding().encode_ordinary(t) for t in ("hello world", "token arrays")]
    result = client(gw).embeddings.create(model="embed-small", input=arrays)
    assert _close(result.data[0].embedding, vector("hello world", 64))
    assert _close(result.data[1].embedding, vector("token arrays", 64))
    sent = [r for r in simulator.requests if r.path.endswith("/embeddings")][-1]
    assert sent.body["input"] == arrays
    one = client(gw).embeddings.create(model="embed", input=arrays[0])  # via Gemini
    assert _close(one.data[0].embedding, vector("hello world", 32))  # sim-embed-d32
