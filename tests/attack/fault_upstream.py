"""A fault-injecting upstream speaking OpenAI's Chat Completions wire format (JSON and SSE).

The model name picks the behaviour, tokens joined by ``-`` (unknown tokens are ignored):

* ``ans<N>``: an answer of N completion tokens (``"tok "`` each; usage reports N); it honours
  ``max_tokens`` unless the name also has ``ignore`` (an upstream that ignores the cap);
* ``s429`` / ``s500`` / ``s503``: that status, OpenAI's error JSON (429 with retry-after 0);
* ``html``: a 502 with an HTML page (a proxy's error page); ``html200``: a 200 with HTML;
* ``malformed``: a 200 whose body (or SSE data) is not JSON;
* ``huge<MB>``: a 200 answer whose content is N MiB (streamed: in 64 KiB chunks);
* ``hang``: never answers; ``reset``: closes the connection without a byte;
* ``cut``: the stream (or body) stops half-way and the connection closes;
* ``drip`` / ``fastdrip``: a stream whose chunks (20 tokens each) come 50 / 5 ms apart;
* ``resetreused``: answers a connection's first request; the second request on the same
  keep-alive connection is read, then the connection is reset before any answer.

``calls`` counts requests per model name as the upstream received them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

_TOKEN = re.compile(r"^(ans|huge)(\d+)$")
CHUNK_TOKENS = 20


class FaultUpstream:
    def __init__(self, runner: web.AppRunner, port: int, calls: Counter[str]) -> None:
        self.runner = runner
        self.port = port
        self.calls = calls

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):  # a hanging handler is not waited for
            await asyncio.wait_for(self.runner.cleanup(), 2)


def _behaviour(model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"ans": 5, "huge": 0}
    for token in model.split("-"):
        m = _TOKEN.match(token)
        if m:
            out[m.group(1)] = int(m.group(2))
        else:
            out[token] = True
    return out


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    headers = {"retry-after": "0"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    event = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 0, "model": model}
    return b"data: " + orjson.dumps({**event, "choices": [choice]}) + b"\n\n"


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}


async def _stream(request: web.Request, model: str, b: dict[str, Any], n: int) -> Any:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    if b.get("malformed"):
        await resp.write(b"data: {this is not json\n\n")
        return resp
    await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
    if b["huge"]:
        piece = _chunk(model, {"content": "x" * 65536})
        for _ in range(b["huge"] * 16):
            await resp.write(piece)
    sent = 0
    while sent < n:
        k = min(CHUNK_TOKENS, n - sent)
        await resp.write(_chunk(model, {"content": "tok " * k}))
        sent += k
        if b.get("drip") or b.get("fastdrip"):
            await asyncio.sleep(0.05 if b.get("drip") else 0.005)
        if b.get("cut") and sent >= n // 2:
            request.transport.close()  # type: ignore[union-attr]
            return resp
    await resp.write(_chunk(model, {}, "stop"))
    usage = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 0}
    await resp.write(
        b"data: " + orjson.dumps({**usage, "model": model, "choices": [], "usage": _usage(n)})
    )
    await resp.write(b"\n\ndata: [DONE]\n\n")
    return resp


def _answer(model: str, b: dict[str, Any], n: int) -> web.Response:
    content = "tok " * n + ("x" * (b["huge"] << 20) if b["huge"] else "")
    message = {"role": "assistant", "content": content}
    body = {
        "id": "chatcmpl-f",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(n),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _chat(request: web.Request, calls: Counter[str], per_conn: Counter[int]) -> Any:
    body = await request.json()
    model = str(body.get("model", ""))
    calls[model] += 1
    b = _behaviour(model)
    transport = request.transport
    conn = id(transport)
    per_conn[conn] += 1
    if b.get("resetreused") and per_conn[conn] > 1:
        if transport is not None:
            transport.abort()
        raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
    for status in (429, 500, 503):
        if b.get(f"s{status}"):
            return _error(status, f"simulated {status}")
    if b.get("hang"):
        await asyncio.sleep(30)
    if b.get("reset"):
        if transport is not None:
            transport.abort()
        raise web.HTTPServiceUnavailable()
    if b.get("html") or b.get("html200"):
        page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        return web.Response(
            text=page, status=200 if b.get("html200") else 502, content_type="text/html"
        )
    n = b["ans"]
    cap = body.get("max_tokens") or body.get("max_completion_tokens")
    if isinstance(cap, int) and not b.get("ignore"):
        n = min(n, cap)
    if body.get("stream"):
        return await _stream(request, model, b, n)
    if b.get("malformed"):
        return web.Response(body=b"{this is not json", content_type="application/json")
    if b.get("cut"):
        resp = web.StreamResponse(headers={"content-length": "1000"})
        await resp.prepare(request)
        await resp.write(b'{"id": "chatcmpl-f", "choi')
        if transport is not None:
            transport.close()
        return resp
    return _answer(model, b, n)


async def start_fault_upstream() -> FaultUpstream:
    calls: Counter[str] = Counter()
    per_conn: Counter[int] = Counter()
    app = web.Application(client_max_size=64 << 20)

    async def chat(request: web.Request) -> Any:
        return await _chat(request, calls, per_conn)

    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return FaultUpstream(runner, port, calls)
