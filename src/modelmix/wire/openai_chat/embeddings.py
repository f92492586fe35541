"""OpenAI Embeddings (``POST /v1/embeddings``), both directions and the simulated side.

- client codec: ``parse_embedding_request`` (body -> ``EmbeddingRequest``, OpenAI's messages
  and ``param`` paths; token arrays are taken as cl100k, as LangChain sends them) and
  ``render_embedding_response`` (``float`` or ``base64`` vectors); errors render with
  ``client.render_error`` (one OpenAI error shape for every endpoint);
- upstream adapter: ``EMBEDDINGS_ADAPTER`` for any OpenAI-compatible ``/embeddings``;
- simulated side: ``OpenAIEmbeddingsWire`` for the fake upstream.
Pure, no I/O.
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import orjson

from modelmix.embeddings.types import EmbeddingRequest, EmbeddingResponse
from modelmix.errors import GatewayError, UpstreamError
from modelmix.providers.base import Deployment, HttpRequest
from modelmix.tokens import decode_tokens
from modelmix.types import Usage
from modelmix.wire.common import loads_object
from modelmix.wire.openai_chat.upstream import ADAPTER as CHAT_ADAPTER

if TYPE_CHECKING:
    from aiohttp import web

_KNOWN = frozenset({"model", "input", "encoding_format", "dimensions", "user", "metadata"})
_FORMATS = ("float", "base64")
#: OpenAI's own limit on inputs per request.
MAX_INPUTS = 2048


def _invalid(message: str, param: str | None, code: str | None = None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param, code=code)


def _is_tokens(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
    )


def _decoded(arrays: list[list[int]]) -> list[str]:
    texts = []
    for i, tokens in enumerate(arrays):
        try:
            texts.append(decode_tokens(tokens))
        except (ValueError, ImportError) as exc:
            raise _invalid(
                f"'input[{i}]' is not a cl100k token array: {exc}", f"input[{i}]"
            ) from None
    return texts


def _inputs(value: object) -> tuple[list[str], list[list[int]] | None]:
    """(texts, token arrays or None): a string, strings, a token array or token arrays."""
    if isinstance(value, str) or _is_tokens(value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid(
            "'input' must be a non-empty string, array of strings or array of token arrays.",
            "input",
        )
    if len(value) > MAX_INPUTS:
        raise _invalid(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    if all(_is_tokens(item) for item in value):
        return _decoded(value), value
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _invalid(
                f"'input[{i}]' must be a non-empty string (or every item a token array).",
                f"input[{i}]",
            )
    return value, None


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid("'metadata' must be an object of strings.", "metadata")
    return {str(k): v for k, v in value.items()}


def parse_embedding_request(body: object) -> EmbeddingRequest:
    """Validate an OpenAI ``/v1/embeddings`` body (raises ``GatewayError``, status 400)."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", None)
    for key in body:
        if key not in _KNOWN:
            raise _invalid(
                f"Unrecognized request argument supplied: {key}", key, "unknown_parameter"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter", "model")
    if "input" not in body:
        raise _invalid(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    if fmt not in _FORMATS:
        raise _invalid(f"'encoding_format' must be one of {list(_FORMATS)}.", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise _invalid("'dimensions' must be a positive integer.", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("'user' must be a string.", "user")
    texts, tokens = _inputs(body["input"])
    return EmbeddingRequest(
        model=model,
        inputs=texts,
        token_inputs=tokens,
        encoding_format=fmt,
        dimensions=dims,
        user=user,
        metadata=_metadata(body.get("metadata")),
    )


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32, base64: what OpenAI sends for ``encoding_format: base64``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def render_embedding_response(
    response: EmbeddingResponse, *, model: str, encoding_format: str
) -> bytes:
    """An OpenAI ``list`` of ``embedding`` objects; ``model`` is the name the client asked for."""
    b64 = encoding_format == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": encode_base64(v) if b64 else v}
        for i, v in enumerate(response.vectors)
    ]
    tokens = response.usage.prompt_tokens
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


# ----------------------------------------------------------------------------- upstream


class OpenAIEmbeddingsAdapter:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` (floats asked for: every
    compatible server speaks them)."""

    kind = "openai"

    def build_request(self, request: EmbeddingRequest, deployment: Deployment) -> HttpRequest:
        body: dict[str, Any] = {
            "model": deployment.upstream_model,
            "input": request.token_inputs if request.token_inputs is not None else request.inputs,
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        headers.update(deployment.headers)
        return HttpRequest("POST", f"{deployment.base_url}/embeddings", headers, orjson.dumps(body))

    def parse_response(self, body: bytes, request: EmbeddingRequest) -> EmbeddingResponse:
        data = loads_object(body)
        items = data.get("data")
        if not isinstance(items, list) or len(items) != len(request.inputs):
            raise UpstreamError("bad_response", "embeddings answer without one vector per input")
        vectors: list[list[float]] = [[] for _ in items]
        for pos, item in enumerate(items):
            index = item.get("index", pos) if isinstance(item, dict) else None
            vec = item.get("embedding") if isinstance(item, dict) else None
            if isinstance(vec, str):  # a server that answers base64 whatever was asked
                raw = base64.b64decode(vec)
                vec = list(struct.unpack(f"<{len(raw) // 4}f", raw))
            if (
                not isinstance(index, int)
                or not 0 <= index < len(items)
                or not isinstance(vec, list)
            ):
                raise UpstreamError("bad_response", "malformed embedding item in the answer")
            vectors[index] = vec
        usage = data.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return EmbeddingResponse(
            vectors, Usage(prompt_tokens=tokens if isinstance(tokens, int) else 0)
        )

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return CHAT_ADAPTER.parse_error(status, body, headers)


EMBEDDINGS_ADAPTER = OpenAIEmbeddingsAdapter()


# ---------------------------------------------------------------------------- simulated


class OpenAIEmbeddingsWire:
    """The vendor's side of ``POST /openai/v1/embeddings`` for the simulated upstream."""

    kind = "openai"

    def api_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None

    def parse(self, body: Any) -> tuple[str, list[str], int | None]:
        """(model, texts, dimensions) of a request; ``RequestError`` when malformed."""
        from modelmix.simulated.wire import RequestError  # the fake upstream only: aiohttp

        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise RequestError("you must provide a model parameter", param="model")
        texts = body.get("input")
        if isinstance(texts, str) or _is_tokens(texts):
            texts = [texts]
        if isinstance(texts, list) and texts and all(_is_tokens(t) for t in texts):
            texts = [decode_tokens(t) for t in texts]  # the same vector as the text's
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise RequestError("'input' must be a string or an array of strings", param="input")
        dims = body.get("dimensions")
        return body["model"], texts, dims if isinstance(dims, int) else None

    def response(self, model: str, vectors: list[list[float]], tokens: int) -> bytes:
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
