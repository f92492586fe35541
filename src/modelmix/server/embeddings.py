"""``POST /v1/embeddings`` (OpenAI format) as plain ASGI, beside the chat endpoints.

Authenticate -> read and parse the body (``wire/openai_chat/embeddings.py``) ->
``embeddings.run.run_embeddings`` (record, admission, fallback over embedding models, ledger)
-> render (``float`` or ``base64``). Errors come back as OpenAI error JSON with their status.
"""

from __future__ import annotations

import logging
import time

from modelmix.embeddings.run import API, run_embeddings
from modelmix.embeddings.types import EmbeddingRequest
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway, new_request_id
from modelmix.server.auth import Authenticator
from modelmix.server.chat import (
    _JSON_HEADERS,
    TAG_HEADER_PREFIX,
    Receive,
    Scope,
    Send,
    _answer_headers,
    _headers_of,
    _read_json,
    send_error,
)
from modelmix.server.formats import OPENAI
from modelmix.wire.openai_chat.embeddings import (
    parse_embedding_request,
    render_embedding_response,
)

log = logging.getLogger("modelmix.server")

EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")


class EmbeddingsEndpoint:
    def __init__(self, gateway: Gateway, auth: Authenticator) -> None:
        self.gateway = gateway
        self.auth = auth
        self.max_body = gateway.config.server.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        started = time.time()
        request_id = new_request_id()
        request: EmbeddingRequest | None = None
        try:
            headers = _headers_of(scope)
            key_id = self.auth.authenticate(headers)
            request = parse_embedding_request(await _read_json(receive, headers, self.max_body))
            for name, value in headers.items():
                if name.startswith(TAG_HEADER_PREFIX):
                    request.metadata[name[len(TAG_HEADER_PREFIX) :]] = value
            result = await run_embeddings(
                gateway, request, key_id=key_id, request_id=request_id, started_at=started
            )
        except GatewayError as err:
            if err.record is None:  # refused before the lifecycle took it (key, body)
                gateway.refuse(API, None, err, request_id=request_id, started_at=started)
            extra = err.admission.headers() if err.admission is not None else None
            await send_error(send, OPENAI, err, request_id, extra)
            return
        except Exception:
            log.exception("internal error in request %s", request_id)
            internal = GatewayError("internal", f"Internal error (request {request_id}).")
            gateway.refuse(API, None, internal, request_id=request_id, started_at=started)
            await send_error(send, OPENAI, internal, request_id)
            return
        record = result.record
        body = render_embedding_response(
            result.response, model=request.model, encoding_format=request.encoding_format
        )
        out = _answer_headers(record, request_id, OPENAI)
        if not record.unpriced:
            out.append((b"x-modelmix-cost-usd", str(record.cost_usd).encode()))
        out += result.admission.headers()
        await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS + out})
        await send({"type": "http.response.body", "body": body})
