"""The Python limit: a minimal aiohttp pass-through proxy (no parsing, no auth, no ledger).

Forwards ``POST /v1/chat/completions`` bodies to ``--upstream`` with one pooled aiohttp client
and pipes the answer back (JSON whole, streams chunk by chunk).

    python3 benchmarks/perf/bare_proxy.py --port 9101 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    target = upstream.rstrip("/") + "/chat/completions"

    async def on_startup(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=1000)
        app["session"] = aiohttp.ClientSession(connector=connector)

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        async with session.post(
            target, data=body, headers={"content-type": "application/json"}
        ) as up:
            ctype = up.headers.get("content-type", "application/json")
            if not ctype.startswith("text/event-stream"):
                return web.Response(body=await up.read(), status=up.status, content_type=ctype)
            resp = web.StreamResponse(status=up.status, headers={"content-type": ctype})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100/v1")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        make_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
