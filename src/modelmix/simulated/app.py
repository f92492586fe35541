"""The simulated upstream's aiohttp application, and :class:`Simulator` to run it in-process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from modelmix.providers.specs import WIRE_PATHS
from modelmix.simulated.answers import Answer, Ask, compose
from modelmix.simulated.behaviour import Behaviour, parse_behaviour
from modelmix.simulated.load import Load
from modelmix.simulated.prompt_cache import PromptCache
from modelmix.simulated.wire import MALFORMED_BODY, RequestError, WireFormat

#: The models ``GET .../models`` lists: the zero-key demo portfolio.
DEMO_MODELS = ("sim-small", "sim-medium", "sim-large")

#: How long the ``timeout`` behaviour sleeps: far longer than any client timeout.
TIMEOUT_SLEEP_S = 3600.0

#: Every response carries this header, so no one mistakes a simulated answer for a real one.
SIMULATED_HEADER = "X-Modelmix-Simulated"

_JSON = "application/json"
_RECENT_REQUESTS = 64
#: Wire format -> path prefix, from the provider registry.
_PATHS = WIRE_PATHS


@dataclass(slots=True)
class RecordedRequest:
    """A request the simulator received (kept for tests to inspect)."""

    kind: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class SimulatorState:
    """Per-application mutable state: call counters and the most recent requests."""

    #: Calls per exact model name (``flaky<N>`` fails while this is <= N).
    calls: Counter[str] = field(default_factory=Counter)
    requests: deque[RecordedRequest] = field(default_factory=lambda: deque(maxlen=_RECENT_REQUESTS))
    #: Runtime delay and capacity knobs (load.py).
    load: Load = field(default_factory=Load)
    #: Prompt prefixes cached at ``cache_control`` breakpoints (Anthropic's format).
    prompt_cache: PromptCache = field(default_factory=PromptCache)

    def reset(self) -> None:
        self.calls.clear()
        self.requests.clear()
        self.prompt_cache = PromptCache()


STATE = web.AppKey("modelmix_simulated_state", SimulatorState)


class Simulator:
    """A running simulated upstream (see :func:`start_simulator`)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port
        self.state: SimulatorState = runner.app[STATE]

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, kind: str) -> str:
        """The base URL of one wire format: ``openai``, ``anthropic`` or ``gemini``.

        OpenAI SDK: ``base_url=sim.base_url("openai")``. The Anthropic SDK appends
        ``/v1/messages`` itself, so give it ``sim.url + "/anthropic"``.
        """
        try:
            return self.url + _PATHS[kind]
        except KeyError:
            known = list(_PATHS)
            raise ValueError(f"unknown wire format {kind!r}; expected one of {known}") from None

    def reset(self) -> None:
        """Forget call counters (so ``flaky<N>`` models fail again) and recorded requests."""
        self.state.reset()

    @property
    def load(self) -> Load:
        """Runtime delay and capacity per upstream model name (load.py)."""
        return self.state.load

    @property
    def calls(self) -> Counter[str]:
        """Calls received per model name."""
        return self.state.calls

    @property
    def requests(self) -> deque[RecordedRequest]:
        """The most recent requests received, oldest first."""
        return self.state.requests

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def start_simulator(host: str = "127.0.0.1", port: int = 0) -> Simulator:
    """Start the simulated upstream on ``host:port`` (0: any free port) in this event loop."""
    runner = web.AppRunner(
        create_app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.25
    )
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        await runner.cleanup()
        raise
    site = web.SockSite(runner, sock)
    await site.start()
    return Simulator(runner, host, sock.getsockname()[1])


def create_app() -> web.Application:
    """The simulated upstream as an aiohttp application (see the package docstring)."""
    from modelmix.simulated.embeddings import handle_embeddings
    from modelmix.wire.anthropic_messages.simulated import AnthropicWire
    from modelmix.wire.gemini.embeddings import ACTION, GeminiEmbeddingsWire
    from modelmix.wire.gemini.simulated import GeminiWire
    from modelmix.wire.openai_chat.embeddings import OpenAIEmbeddingsWire
    from modelmix.wire.openai_chat.simulated import OpenAIWire
    from modelmix.wire.openai_responses.simulated import ResponsesWire

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimulatorState()
    openai, anthropic, gemini = OpenAIWire(), AnthropicWire(), GeminiWire()
    responses = ResponsesWire()

    async def openai_chat(request: web.Request) -> web.StreamResponse:
        return await handle(request, openai)

    async def openai_responses(request: web.Request) -> web.StreamResponse:
        return await handle(request, responses)

    async def anthropic_messages(request: web.Request) -> web.StreamResponse:
        return await handle(request, anthropic)

    async def anthropic_count_tokens(request: web.Request) -> web.StreamResponse:
        if anthropic.api_key(request) == "invalid":
            return _error(anthropic, 401)
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(anthropic, 400, RequestError("We could not parse the JSON body."))
        state = request.app[STATE]
        state.requests.append(
            RecordedRequest("anthropic", request.path, dict(request.headers), body)
        )
        try:
            return _json(anthropic.count_tokens(body, request))
        except RequestError as error:
            return _error(anthropic, error.status, error)

    async def gemini_generate(request: web.Request) -> web.StreamResponse:
        if request.match_info["target"].endswith(":" + ACTION):  # embeddings
            return await handle_embeddings(request, gemini_embeddings, gemini)
        return await handle(request, gemini)

    openai_embeddings, gemini_embeddings = OpenAIEmbeddingsWire(), GeminiEmbeddingsWire()

    async def openai_embed(request: web.Request) -> web.StreamResponse:
        return await handle_embeddings(request, openai_embeddings, openai)

    async def openai_models(request: web.Request) -> web.StreamResponse:
        if openai.api_key(request) == "invalid":
            return _error(openai, 401)
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "modelmix-simulated"}
            for m in DEMO_MODELS
        ]
        return _json(orjson.dumps({"object": "list", "data": data}))

    async def anthropic_models(request: web.Request) -> web.StreamResponse:
        if anthropic.api_key(request) == "invalid":
            return _error(anthropic, 401)
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": f"Simulated {m}",
                "created_at": "2024-01-01T00:00:00Z",
            }
            for m in DEMO_MODELS
        ]
        body = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"],
            "last_id": data[-1]["id"],
        }
        return _json(orjson.dumps(body))

    async def gemini_models(request: web.Request) -> web.StreamResponse:
        if gemini.api_key(request) == "invalid":
            return _error(gemini, 401)
        data = [
            {
                "name": f"models/{m}",
                "displayName": f"Simulated {m}",
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
            for m in DEMO_MODELS
        ]
        return _json(orjson.dumps({"models": data}))

    async def index(request: web.Request) -> web.StreamResponse:
        body = {"simulated": True, "formats": _PATHS, "models": list(DEMO_MODELS)}
        return _json(orjson.dumps(body))

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(text=request.app[STATE].load.metrics())

    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/openai/v1/chat/completions", openai_chat)
    app.router.add_get("/openai/v1/models", openai_models)
    app.router.add_post("/openai/v1/embeddings", openai_embed)
    app.router.add_post("/openai/v1/responses", openai_responses)
    app.router.add_post("/anthropic/v1/messages", anthropic_messages)
    app.router.add_post("/anthropic/v1/messages/count_tokens", anthropic_count_tokens)
    app.router.add_get("/anthropic/v1/models", anthropic_models)
    app.router.add_post("/gemini/v1beta/models/{target}", gemini_generate)
    app.router.add_get("/gemini/v1beta/models", gemini_models)
    return app


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": _JSON, SIMULATED_HEADER: "true"}
    if headers:
        all_headers.update(headers)
    return web.Response(body=body, status=status, headers=all_headers)


def _error(wire: WireFormat, status: int, error: RequestError | None = None) -> web.Response:
    headers = {"Retry-After": "1"} if status == 429 else None
    return _json(wire.error(status, error), status, headers)


async def handle(request: web.Request, wire: WireFormat) -> web.StreamResponse:
    """Answer one request in ``wire``'s format, as its model name's behaviour says."""
    if wire.api_key(request) == "invalid":
        return _error(wire, 401)
    state = request.app[STATE]
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        state.requests.append(RecordedRequest(wire.kind, request.path, dict(request.headers), raw))
        return _error(wire, 400, RequestError("We could not parse the JSON body of your request."))
    state.requests.append(RecordedRequest(wire.kind, request.path, dict(request.headers), body))
    try:
        ask = wire.parse(body, request)
    except RequestError as error:
        return _error(wire, error.status, error)
    if ask.cache_points:
        ask.cache_read_chars, ask.cache_write_chars = state.prompt_cache.use(ask.cache_points)
    model = ask.model
    state.calls[model] += 1
    if state.load.watched(model):
        async with state.load.serving(model):
            return await _respond(request, wire, ask, state.calls[model])
    return await _respond(request, wire, ask, state.calls[model])


async def _respond(
    request: web.Request, wire: WireFormat, ask: Ask, call: int
) -> web.StreamResponse:
    behaviour = parse_behaviour(ask.model)
    status = behaviour.error_status
    if behaviour.flaky and call <= behaviour.flaky:
        status = 500
    if status is not None or behaviour.timeout or behaviour.reset:
        if behaviour.slow_ms:
            await asyncio.sleep(behaviour.slow_ms / 1000)
        if status is not None:
            return _error(wire, status)
        if behaviour.timeout:
            await asyncio.sleep(TIMEOUT_SLEEP_S)
        abort(request)
        return web.Response()
    answer = compose(ask, behaviour, call)
    if ask.stream:
        return await _stream(request, wire, ask, answer, behaviour)
    delay = behaviour.slow_ms + behaviour.ttft_ms
    if delay:
        await asyncio.sleep(delay / 1000)
    if behaviour.malformed:
        return _json(MALFORMED_BODY)
    payload = wire.response(ask, answer)
    if behaviour.cut:
        return await _cut_body(request, payload)
    return _json(payload)


async def _stream(
    request: web.Request, wire: WireFormat, ask: Ask, answer: Answer, behaviour: Behaviour
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": wire.stream_content_type(ask),
            "Cache-Control": "no-cache",
            SIMULATED_HEADER: "true",
        }
    )
    await response.prepare(request)
    frames = wire.malformed_stream(ask) if behaviour.malformed else wire.stream(ask, answer)
    if behaviour.cut:
        frames = frames[: max(1, len(frames) // 2)]
    if behaviour.slow_ms or behaviour.ttft_ms:
        for i, frame in enumerate(frames):
            delay = behaviour.slow_ms + (behaviour.ttft_ms if i == 0 else 0)
            if delay:
                await asyncio.sleep(delay / 1000)
            await response.write(frame)
    else:
        await response.write(b"".join(frames))
    if behaviour.cut:
        abort(request)
        return response
    await response.write_eof()
    return response


async def _cut_body(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Announce the full body, send half of it, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": _JSON, SIMULATED_HEADER: "true"})
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    abort(request)
    return response


def abort(request: web.Request) -> None:
    """Drop the request's TCP connection at once, with a reset (RST) rather than a FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
