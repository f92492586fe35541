"""Gemini ``models/{model}:batchEmbedContents``: the upstream adapter and the simulated side.

Request: ``{"requests": [{"model": "models/M", "content": {"parts": [{"text": ...}]},
"outputDimensionality": N}]}``; answer: ``{"embeddings": [{"values": [...]}]}``. The API
reports no token usage, so the adapter counts the inputs with cl100k and marks the usage as
estimated (the ledger row's cost confidence says so). Pure, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from modelmix.embeddings.types import EmbeddingRequest, EmbeddingResponse
from modelmix.errors import UpstreamError
from modelmix.providers.base import Deployment, HttpRequest
from modelmix.tokens import count_tokens
from modelmix.types import Usage
from modelmix.wire.common import loads_object
from modelmix.wire.gemini.upstream import ADAPTER as CHAT_ADAPTER

if TYPE_CHECKING:
    from aiohttp import web

ACTION = "batchEmbedContents"


def estimated_tokens(texts: list[str]) -> int:
    """The inputs' cl100k tokens (Gemini's embeddings API reports none)."""
    return sum(count_tokens(t) for t in texts)


class GeminiEmbeddingsAdapter:
    kind = "gemini"
    #: The answer carries no usage: the tokens are an estimate.
    usage_estimated = True

    def build_request(self, request: EmbeddingRequest, deployment: Deployment) -> HttpRequest:
        name = f"models/{deployment.upstream_model}"
        one: dict[str, Any] = {"model": name}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        body = {"requests": [{**one, "content": {"parts": [{"text": t}]}} for t in request.inputs]}
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        headers.update(deployment.headers)
        return HttpRequest(
            "POST", f"{deployment.base_url}/{name}:{ACTION}", headers, orjson.dumps(body)
        )

    def parse_response(self, body: bytes, request: EmbeddingRequest) -> EmbeddingResponse:
        data = loads_object(body)
        items = data.get("embeddings")
        if not isinstance(items, list) or len(items) != len(request.inputs):
            raise UpstreamError(
                "bad_response", "batchEmbedContents answer without one vector per input"
            )
        vectors = [item.get("values") if isinstance(item, dict) else None for item in items]
        if not all(isinstance(v, list) for v in vectors):
            raise UpstreamError(
                "bad_response", "malformed embedding in the batchEmbedContents answer"
            )
        usage = Usage(prompt_tokens=estimated_tokens(request.inputs))
        return EmbeddingResponse([v for v in vectors if isinstance(v, list)], usage)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return CHAT_ADAPTER.parse_error(status, body, headers)


EMBEDDINGS_ADAPTER = GeminiEmbeddingsAdapter()


# ---------------------------------------------------------------------------- simulated


class GeminiEmbeddingsWire:
    """The vendor's side of ``POST /gemini/v1beta/models/{model}:batchEmbedContents``."""

    kind = "gemini"

    def api_key(self, request: web.Request) -> str | None:
        key = request.headers.get("x-goog-api-key")
        return key if key is not None else request.query.get("key")

    def parse(self, body: Any) -> tuple[str, list[str], int | None]:
        """(model, texts, dimensions); ``RequestError`` when malformed, as Gemini words it."""
        from modelmix.simulated.wire import RequestError  # the fake upstream only: aiohttp

        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise RequestError("* BatchEmbedContentsRequest.requests: contains no requests")
        texts: list[str] = []
        dims: int | None = None
        model = ""
        for i, one in enumerate(requests):
            parts = one.get("content", {}).get("parts") if isinstance(one, dict) else None
            if not isinstance(parts, list) or not parts:
                raise RequestError(f"* BatchEmbedContentsRequest.requests[{i}].content: required")
            texts.append("".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)))
            model = str(one.get("model", "")).removeprefix("models/")
            d = one.get("outputDimensionality")
            dims = d if isinstance(d, int) else dims
        return model, texts, dims

    def response(self, model: str, vectors: list[list[float]], tokens: int) -> bytes:
        return orjson.dumps({"embeddings": [{"values": v} for v in vectors]})
