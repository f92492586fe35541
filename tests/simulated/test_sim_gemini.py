"""The simulated Gemini API (``generateContent`` / ``streamGenerateContent``), over aiohttp."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from modelmix.simulated import Simulator

CONTENTS: Any = [{"role": "user", "parts": [{"text": "What is 2+2?"}]}]
TOOLS: Any = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {
                    "type": "OBJECT",
                    "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
                    "required": ["city"],
                },
            },
            {"name": "lookup", "parameters": {"type": "OBJECT", "properties": {}}},
        ]
    }
]


def url(sim: Simulator, model: str, action: str = "generateContent", query: str = "") -> str:
    return f"{sim.base_url('gemini')}/models/{model}:{action}{query}"


async def post(
    sim: Simulator, model: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url(sim, model), json=body, headers=headers or {}) as resp,
    ):
        return resp.status, await resp.json(), resp.headers


async def stream_sse(sim: Simulator, model: str, body: Any) -> list[Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url(sim, model, "streamGenerateContent", "?alt=sse"), json=body) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events = [e for e in raw.split("\r\n\r\n") if e]
    assert all(e.startswith("data: ") for e in events)
    return [json.loads(e[6:]) for e in events]


async def test_plain_answer(sim: Simulator) -> None:
    status, body, _ = await post(sim, "sim-small", {"contents": CONTENTS})
    assert status == 200
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"] == [{"text": "[simulated sim-small] 2 + 2 = 4"}]
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"]) == (3, 8)
    assert usage["totalTokenCount"] == 11 and "cachedContentTokenCount" not in usage
    assert body["modelVersion"] == "sim-small"


async def test_snake_case_and_system_instruction(sim: Simulator) -> None:
    body = {
        "contents": CONTENTS,
        "system_instruction": {"parts": [{"text": "x" * 40}]},
        "generation_config": {"max_output_tokens": 2},
    }
    status, answer, _ = await post(sim, "sim-small", body)
    assert status == 200
    assert answer["usageMetadata"]["promptTokenCount"] == 13
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "[simulat"


async def test_sse_stream(sim: Simulator) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me about the sea."}]}]}
    chunks = await stream_sse(sim, "sim-small", body)
    assert len(chunks) > 2
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    _, plain, _ = await post(sim, "sim-small", body)
    assert text == plain["candidates"][0]["content"]["parts"][0]["text"]
    assert [("finishReason" in c["candidates"][0]) for c in chunks][-2:] == [False, True]
    assert chunks[-1]["usageMetadata"] == plain["usageMetadata"]


async def test_json_array_stream_without_alt_sse(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url(sim, "sim-small", "streamGenerateContent"), json={"contents": CONTENTS}) as r,
    ):
        assert r.headers["Content-Type"].startswith("application/json")
        chunks = json.loads(await r.read())
    assert isinstance(chunks, list) and len(chunks) > 1
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_function_call(sim: Simulator) -> None:
    status, body, _ = await post(sim, "sim-small", {"contents": CONTENTS, "tools": TOOLS})
    assert status == 200
    part = body["candidates"][0]["content"]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    chunks = await stream_sse(sim, "sim-small", {"contents": CONTENTS, "tools": TOOLS})
    assert chunks[0]["candidates"][0]["content"]["parts"][0] == part


async def test_tool_config(sim: Simulator) -> None:
    forced = {
        "contents": CONTENTS,
        "tools": TOOLS,
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
        },
    }
    _, body, _ = await post(sim, "sim-small", forced)
    assert body["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "lookup"
    forced["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    _, body, _ = await post(sim, "sim-small", forced)
    assert "text" in body["candidates"][0]["content"]["parts"][0]


async def test_after_a_function_response_the_answer_is_text(sim: Simulator) -> None:
    contents = [
        *CONTENTS,
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}],
        },
    ]
    _, body, _ = await post(sim, "sim-small", {"contents": contents, "tools": TOOLS})
    text = body["candidates"][0]["content"]["parts"][0]["text"]
    assert "get_weather" in text and "sunny" in text


async def test_json_schema_and_json_mode(sim: Simulator) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"sum": {"type": "INTEGER"}, "note": {"type": "STRING"}},
        "required": ["sum"],
    }
    body = {
        "contents": CONTENTS,
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    _, answer, _ = await post(sim, "sim-small", body)
    value = json.loads(answer["candidates"][0]["content"]["parts"][0]["text"])
    assert value == {"sum": 1, "note": "simulated note"}
    body["generationConfig"] = {"responseMimeType": "application/json"}
    _, answer, _ = await post(sim, "sim-small", body)
    value = json.loads(answer["candidates"][0]["content"]["parts"][0]["text"])
    assert value["answer"] == "2 + 2 = 4"


async def test_stop_sequences_and_cached_tokens(sim: Simulator) -> None:
    body = {"contents": CONTENTS, "generationConfig": {"stopSequences": ["="]}}
    _, answer, _ = await post(sim, "sim-cached50", body)
    assert answer["candidates"][0]["finishReason"] == "STOP"
    assert answer["candidates"][0]["content"]["parts"][0]["text"].endswith("2 + 2 ")
    usage = answer["usageMetadata"]
    assert usage["cachedContentTokenCount"] == 50 and usage["promptTokenCount"] == 53


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("sim-429", 429, "RESOURCE_EXHAUSTED"),
        ("sim-500", 500, "INTERNAL"),
        ("sim-503", 503, "UNAVAILABLE"),
    ],
)
async def test_status_errors(sim: Simulator, model: str, status: int, code: str) -> None:
    got, body, headers = await post(sim, model, {"contents": CONTENTS})
    assert got == status
    assert body["error"]["code"] == status and body["error"]["status"] == code
    assert isinstance(body["error"]["message"], str)
    if status == 429:
        assert headers["Retry-After"] == "1"


async def test_invalid_key_in_header_or_query(sim: Simulator) -> None:
    status, body, _ = await post(sim, "m", {"contents": CONTENTS}, {"x-goog-api-key": "invalid"})
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url(sim, "m", query="?key=invalid"), json={"contents": CONTENTS}) as r,
    ):
        assert r.status == 401
    status, _, _ = await post(sim, "m", {"contents": CONTENTS}, {"x-goog-api-key": "anything"})
    assert status == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
    ],
)
async def test_validation(sim: Simulator, body: Any, message: str) -> None:
    status, answer, _ = await post(sim, "m", body)
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert message in answer["error"]["message"]


async def test_unknown_method_is_not_found(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url(sim, "m", "embedContent"), json={"contents": CONTENTS}) as r,
    ):
        assert r.status == 404
        assert (await r.json())["error"]["status"] == "NOT_FOUND"


async def test_reset_and_cut(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.post(url(sim, "sim-reset"), json={"contents": CONTENTS}) as r:
                await r.read()
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(url(sim, "sim-cut"), json={"contents": CONTENTS}) as r:
                await r.read()
        target = url(sim, "sim-cut", "streamGenerateContent", "?alt=sse")
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(target, json={"contents": CONTENTS}) as r:
                async for data in r.content.iter_any():
                    received += data
        assert received.startswith(b"data: ") and b"finishReason" not in received


async def test_malformed(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(url(sim, "sim-malformed"), json={"contents": CONTENTS}) as r:
            assert r.status == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(await r.read())
        target = url(sim, "sim-malformed", "streamGenerateContent", "?alt=sse")
        async with http.post(target, json={"contents": CONTENTS}) as r:
            data = (await r.read()).decode().strip()
        with pytest.raises(json.JSONDecodeError):
            json.loads(data.removeprefix("data: "))


async def test_timeout_and_flaky(sim: Simulator) -> None:
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(TimeoutError):
            async with http.post(url(sim, "sim-timeout"), json={"contents": CONTENTS}) as r:
                await r.read()
    assert time.monotonic() - started < 2
    assert (await post(sim, "sim-flaky1", {"contents": CONTENTS}))[0] == 500
    assert (await post(sim, "sim-flaky1", {"contents": CONTENTS}))[0] == 200


async def test_models_list(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(sim.base_url("gemini") + "/models") as r,
    ):
        names = [m["name"] for m in (await r.json())["models"]]
    assert names == ["models/sim-small", "models/sim-medium", "models/sim-large"]


async def test_logprobs(sim: Simulator) -> None:
    config = {"responseLogprobs": True, "logprobs": 3}
    status, data, _ = await post(
        sim, "sim-large", {"contents": CONTENTS, "generationConfig": config}
    )
    assert status == 200
    candidate = data["candidates"][0]
    result = candidate["logprobsResult"]
    chosen = result["chosenCandidates"]
    assert "".join(c["token"] for c in chosen) == candidate["content"]["parts"][0]["text"]
    assert all(c["logProbability"] < 0 and isinstance(c["tokenId"], int) for c in chosen)
    assert [len(step["candidates"]) for step in result["topCandidates"]] == [3] * len(chosen)
    assert [step["candidates"][0] for step in result["topCandidates"]] == chosen
    assert candidate["avgLogprobs"] < 0

    _, plain, _ = await post(sim, "sim-large", {"contents": CONTENTS})
    assert "logprobsResult" not in plain["candidates"][0]
    status, error, _ = await post(
        sim, "sim-large", {"contents": CONTENTS, "generationConfig": {"logprobs": 2}}
    )
    assert status == 400 and "response_logprobs" in error["error"]["message"]

    chunks = await stream_sse(sim, "sim-large", {"contents": CONTENTS, "generationConfig": config})
    for chunk in chunks:
        candidate = chunk["candidates"][0]
        text = candidate["content"]["parts"][0]["text"]
        tokens = [c["token"] for c in candidate["logprobsResult"]["chosenCandidates"]]
        assert "".join(tokens) == text
