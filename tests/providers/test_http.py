"""UpstreamClient edge cases the simulator does not produce, against a tiny raw aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from modelmix.errors import UpstreamError
from modelmix.providers.base import Deployment
from modelmix.providers.http import FINISH_GRACE, Timeouts, UpstreamClient
from modelmix.types import ChatRequest
from modelmix.wire.openai_chat.upstream import ADAPTER

CHUNK = (
    b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    b"\n\n"
)


async def _no_final_newline(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(CHUNK.replace(b"\n\n", b"\r\n\r\n") + b"data: [DONE]")
    await resp.write_eof()
    return resp


async def _held_open(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(CHUNK + b"data: [DONE]\n\n")
    await asyncio.sleep(30)  # a misbehaving upstream that never closes
    return resp


async def _html_502(request: web.Request) -> web.Response:
    return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/eof/chat/completions", _no_final_newline)
    app.router.add_post("/held/chat/completions", _held_open)
    app.router.add_post("/html/chat/completions", _html_502)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _dep(url: str) -> Deployment:
    return Deployment(id="d", model="m", provider="openai", upstream_model="m", base_url=url)


REQ = ChatRequest(model="m", messages=[{"role": "user", "content": "x"}], stream=True)


async def test_last_event_without_blank_line_and_id_folding(base_url: str) -> None:
    client = UpstreamClient()
    try:
        stream = await client.stream(ADAPTER, _dep(base_url + "/eof"), REQ, Timeouts())
        deltas = [d async for d in stream]
    finally:
        await client.close()
    # the id-only role chunk is folded into the first content delta
    assert deltas[0].content == "hi" and deltas[0].id == "c1" and deltas[0].model == "m"
    assert [d.finish_reason for d in deltas] == [None, "stop", None]
    assert deltas[-1].usage is not None and deltas[-1].usage.total_tokens == 4


async def test_complete_stream_on_a_connection_held_open_ends_cleanly(base_url: str) -> None:
    client = UpstreamClient()
    try:
        timeouts = Timeouts(first_token=1.0, total=0.3)
        stream = await client.stream(ADAPTER, _dep(base_url + "/held"), REQ, timeouts)
        deltas = [d async for d in stream]
        # the grace period, not the total timeout, bounds the wait when total is long
        started = asyncio.get_running_loop().time()
        stream = await client.stream(ADAPTER, _dep(base_url + "/held"), REQ, Timeouts())
        again = [d async for d in stream]
        assert asyncio.get_running_loop().time() - started < FINISH_GRACE + 0.5
        assert len(again) == len(deltas)
    finally:
        await client.close()
    assert "".join(d.content or "" for d in deltas) == "hi"


async def test_non_json_error_body(base_url: str) -> None:
    client = UpstreamClient()
    try:
        with pytest.raises(UpstreamError) as info:
            await client.stream(ADAPTER, _dep(base_url + "/html"), REQ, Timeouts())
    finally:
        await client.close()
    assert (info.value.kind, info.value.status) == ("server", 502)
    assert info.value.message == "<html>Bad Gateway</html>"
