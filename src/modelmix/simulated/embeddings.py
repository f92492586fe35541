"""The simulated upstream's embeddings endpoints (OpenAI ``/embeddings``, Gemini
``:batchEmbedContents``): deterministic vectors (``vectors.py``) in the vendor's format.

The model name's behaviour tokens work as for chat (``sim-embed-500`` always fails,
``flaky<N>`` fails N times); the vector length is the request's dimensions, else
``d<N>`` in the model name (``sim-embed-d64``), else 256.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import orjson
from aiohttp import web

from modelmix.simulated.behaviour import parse_behaviour
from modelmix.simulated.vectors import DEFAULT_DIMENSIONS, vector
from modelmix.simulated.wire import RequestError, WireFormat
from modelmix.tokens import count_tokens

_DIMS = re.compile(r"(?:^|[-_])d(\d{1,5})(?:$|[-_])")


class EmbeddingsWire(Protocol):
    def api_key(self, request: web.Request) -> str | None: ...
    def parse(self, body: Any) -> tuple[str, list[str], int | None]: ...
    def response(self, model: str, vectors: list[list[float]], tokens: int) -> bytes: ...


def dimensions_of(model: str, asked: int | None) -> int:
    if asked is not None:
        return asked
    m = _DIMS.search(model.lower())
    return int(m.group(1)) if m else DEFAULT_DIMENSIONS


async def handle_embeddings(
    request: web.Request, wire: EmbeddingsWire, errors: WireFormat
) -> web.Response:
    """Answer one embeddings request; ``errors`` is the format's chat side (its error bodies)."""
    from modelmix.simulated.app import STATE, RecordedRequest, _error, _json

    if wire.api_key(request) == "invalid":
        return _error(errors, 401)
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(
            errors, 400, RequestError("We could not parse the JSON body of your request.")
        )
    state.requests.append(RecordedRequest(errors.kind, request.path, dict(request.headers), body))
    try:
        model, texts, dims = wire.parse(body)
    except RequestError as error:
        return _error(errors, error.status, error)
    state.calls[model] += 1
    behaviour = parse_behaviour(model)
    status = behaviour.error_status
    if behaviour.flaky and state.calls[model] <= behaviour.flaky:
        status = 500
    if status is not None:
        return _error(errors, status)
    size = dimensions_of(model, dims)
    vectors = [vector(t, size) for t in texts]
    return _json(wire.response(model, vectors, sum(count_tokens(t) for t in texts)))
