"""Costs from each vendor's real usage shape, streamed and not, through adapters and engine.

A fake upstream answers with the bodies the vendors send (OpenAI's ``prompt_tokens_details`` /
``completion_tokens_details``, Anthropic's ``cache_creation_input_tokens`` /
``cache_read_input_tokens``, Gemini's ``thoughtsTokenCount`` / ``cachedContentTokenCount``,
OpenRouter's ``cache_write_tokens``), as JSON and as their streams. The gateway is configured
with the vendors' real base URLs, so prices resolve exactly as in production (including
OpenRouter's own catalog entry, chosen by its URL); only the network address of each deployment
is then pointed at the fake. The expected cost is genai-prices' own answer: its usage extractor
run on the same vendor body, priced by its ``calc_price``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import orjson
import pytest
from aiohttp import web

from modelmix.config import parse_config
from modelmix.gateway import Gateway


@dataclass(frozen=True)
class Case:
    name: str  # the portfolio model
    provider: str  # config provider (a preset or an adapter kind)
    upstream: str  # the model id the vendor and genai-prices know
    base_url: str  # the vendor's real base URL
    genai_provider: str
    body: dict[str, Any]  # the non-streamed answer
    stream: list[tuple[str | None, dict[str, Any]]]  # (SSE event name, data) of the stream


def _openai_stream(body: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    head = {k: body[k] for k in ("id", "created", "model") if k in body}
    head["object"] = "chat.completion.chunk"
    text = body["choices"][0]["message"]["content"]
    pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
    chunks: list[tuple[str | None, dict[str, Any]]] = [
        (None, {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "logprobs": None, "finish_reason": None}], "usage": None}),
    ]  # fmt: skip
    for piece in pieces:
        delta = {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
        chunks.append((None, {**head, "choices": [delta], "usage": None}))
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    chunks.append((None, {**head, "choices": [finish], "usage": None}))
    chunks.append((None, {**head, "choices": [], "usage": body["usage"]}))
    return chunks


OPENAI_BODY = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "o3-mini-2025-01-31",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The answer is 4.", "refusal": None,
                        "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12345,
        "completion_tokens": 2345,
        "total_tokens": 14690,
        "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 1792, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_42bfad963b",
}  # fmt: skip

ANTHROPIC_USAGE = {
    "input_tokens": 1200,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 3000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 800,
    "service_tier": "standard",
}
ANTHROPIC_BODY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "The answer is 4."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}
ANTHROPIC_STREAM: list[tuple[str | None, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {
        **{k: v for k, v in ANTHROPIC_BODY.items() if k not in ("content", "usage")},
        "content": [], "stop_reason": None,
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "The answer"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": " is 4."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 800}}),
    ("message_stop", {"type": "message_stop"}),
]  # fmt: skip

GEMINI_USAGE = {
    "promptTokenCount": 5000,
    "candidatesTokenCount": 700,
    "totalTokenCount": 6600,
    "cachedContentTokenCount": 2048,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 2048}],
    "thoughtsTokenCount": 900,
}
GEMINI_BODY = {
    "candidates": [
        {
            "content": {"parts": [{"text": "The answer is 4."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": GEMINI_USAGE,
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mKbNaJ2dDfGtxN8P0dCp-Ag",
}
GEMINI_STREAM: list[tuple[str | None, dict[str, Any]]] = [
    (None, {"candidates": [{"content": {"parts": [{"text": "The answer"}], "role": "model"},
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": 5000, "totalTokenCount": 5900,
                              "cachedContentTokenCount": 2048, "thoughtsTokenCount": 900},
            "modelVersion": "gemini-2.5-flash", "responseId": "mKbNaJ2dDfGtxN8P0dCp-Ag"}),
    (None, {"candidates": [{"content": {"parts": [{"text": " is 4."}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": GEMINI_USAGE,
            "modelVersion": "gemini-2.5-flash", "responseId": "mKbNaJ2dDfGtxN8P0dCp-Ag"}),
]  # fmt: skip

OPENROUTER_BODY = {
    "id": "gen-1757012345-Qx3yZs1vN2pL8kTq",
    "provider": "Anthropic",
    "model": "anthropic/claude-sonnet-4.5",
    "object": "chat.completion",
    "created": 1757012345,
    "choices": [
        {
            "logprobs": None,
            "finish_reason": "stop",
            "native_finish_reason": "end_turn",
            "index": 0,
            "message": {"role": "assistant", "content": "The answer is 4.", "refusal": None,
                        "reasoning": None},
        }
    ],
    "usage": {
        "prompt_tokens": 6200,
        "completion_tokens": 800,
        "total_tokens": 7000,
        "cost": 0.02385,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 3000, "cache_write_tokens": 2000,
                                  "audio_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
    },
}  # fmt: skip

CASES = [
    Case("o3", "openai", "o3-mini", "https://api.openai.com/v1", "openai", OPENAI_BODY,
         _openai_stream(OPENAI_BODY)),
    Case("sonnet", "anthropic", "claude-sonnet-4-5", "https://api.anthropic.com/v1",
         "anthropic", ANTHROPIC_BODY, ANTHROPIC_STREAM),
    Case("flash", "gemini", "gemini-2.5-flash",
         "https://generativelanguage.googleapis.com/v1beta", "google", GEMINI_BODY,
         GEMINI_STREAM),
    Case("or-sonnet", "openrouter", "anthropic/claude-sonnet-4.5", "https://openrouter.ai/api/v1",
         "openrouter", OPENROUTER_BODY, _openai_stream(OPENROUTER_BODY)),
]  # fmt: skip


def _extract(case: Case) -> Any:
    flavor = "chat" if case.genai_provider in ("openai", "openrouter") else "default"
    return genai_prices.extract_usage(case.body, provider_id=case.genai_provider, api_flavor=flavor)


def expected_cost(case: Case) -> Decimal:
    """genai-prices on its own: its extractor on the vendor body, then its price."""
    extracted = _extract(case)
    price = genai_prices.calc_price(
        extracted.usage, model_ref=case.upstream, provider_id=case.genai_provider
    )
    return Decimal(price.total_price)


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool) -> bytes:
    out = b""
    for event, data in events:
        if event is not None:
            out += f"event: {event}\n".encode()
        out += b"data: " + orjson.dumps(data) + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


def fake_vendor() -> web.Application:
    by_path = {
        "/openai/chat/completions": CASES[0],
        "/anthropic/messages": CASES[1],
        "/gemini/models/gemini-2.5-flash:generateContent": CASES[2],
        "/gemini/models/gemini-2.5-flash:streamGenerateContent": CASES[2],
        "/openrouter/chat/completions": CASES[3],
    }

    async def answer(request: web.Request) -> web.StreamResponse:
        case = by_path[request.path]
        body = await request.json()
        streamed = body.get("stream") is True or request.path.endswith("streamGenerateContent")
        if not streamed:
            return web.json_response(case.body)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_sse(case.stream, done=case.genai_provider in ("openai", "openrouter")))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    return app


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    runner = web.AppRunner(fake_vendor())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = parse_config(
        {
            "models": [
                {"name": c.name, "provider": c.provider, "model": c.upstream,
                 "base_url": c.base_url, "api_key_env": "VENDOR_KEY"}
                for c in CASES
            ],
            "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        }
    )  # fmt: skip
    gw = Gateway(config, env={"VENDOR_KEY": "sk-test"})
    await gw.start()
    local = {
        "o3": "openai",
        "sonnet": "anthropic",
        "flash": "gemini",
        "or-sonnet": "openrouter",
    }
    for name, path in local.items():  # only the address changes; prices stay the vendors'
        for dep in gw.portfolio[name].deployments:
            dep.base_url = f"http://127.0.0.1:{port}/{path}"
    try:
        yield gw
    finally:
        await gw.close()
        await runner.cleanup()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
async def test_cost_matches_genai_prices_for_the_vendor_usage_shape(
    gateway: Gateway, case: Case, streamed: bool
) -> None:
    ask = {"model": case.name, "messages": [{"role": "user", "content": "What is 2+2?"}]}
    if streamed:
        stream = await gateway.chat_stream(ask)
        text = "".join([d.content or "" async for d in stream])
        record = stream.record
    else:
        result = await gateway.chat(ask)
        text = result.response.content or ""
        record = result.record
    assert text == "The answer is 4."
    (attempt,) = record.attempts
    assert attempt.price_source is not None
    assert attempt.price_source.startswith(f"genai-prices:{case.genai_provider}/")
    expected = expected_cost(case)
    assert expected > 0
    assert record.cost_usd == attempt.cost_usd == expected, (case.name, streamed)
    # cached, cache-write and reasoning tokens are all counted (and priced at their own rates)
    extracted = _extract(case).usage
    assert attempt.prompt_tokens == extracted.input_tokens
    assert attempt.cached_tokens == (extracted.cache_read_tokens or 0)
    assert attempt.cache_write_tokens == (extracted.cache_write_tokens or 0)
    assert attempt.completion_tokens == extracted.output_tokens
    assert attempt.reasoning_tokens == (extracted.output_reasoning_tokens or 0)
    # the catalog also prices audio for gemini-2.5-flash: a text-only bill is flagged estimated
    assert record.cost_confidence == ("estimated" if case.name == "flash" else "exact")
