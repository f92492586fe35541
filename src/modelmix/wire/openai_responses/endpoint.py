"""``/v1/responses`` in the server: the hooks the chat endpoint calls for this format, and the
routes for stored responses (``GET`` and ``DELETE /v1/responses/{id}``).

``POST /v1/responses`` runs the same request lifecycle as the chat endpoints (server/chat.py:
authentication, admission, routing, fallbacks, budgets, the ledger); ``prepare`` completes the
canonical request from the stored conversation, ``answer`` renders and stores the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.errors import GatewayError
from modelmix.server.openai_api import render_error
from modelmix.types import ChatRequest, ChatResponse
from modelmix.wire.openai_responses.render import render_response
from modelmix.wire.openai_responses.request import ResponsesRequest, to_chat_request
from modelmix.wire.openai_responses.store import not_found, remember, store_for
from modelmix.wire.openai_responses.stream import ResponsesStreamRenderer

if TYPE_CHECKING:
    from modelmix.gateway import Gateway
    from modelmix.server.auth import Authenticator

__all__ = ["answer", "prepare", "responses_routes", "stream_renderer"]

_JSON = "application/json"


def prepare(gateway: Gateway, chat: ChatRequest, key_id: str | None) -> ChatRequest:
    """Attach the store, load the conversation of ``previous_response_id``, and build the
    complete canonical request."""
    native: ResponsesRequest = chat.native
    native.key_id = key_id
    native.store_ref = store_for(gateway)
    if native.store_ref is None:  # a gateway without a ledger stores nothing, and says so
        native.store = False
    if native.previous_response_id is not None:
        if native.store_ref is None:  # a gateway without a ledger stores nothing
            raise not_found(native.previous_response_id, "previous_response_id")
        native.history = native.store_ref.conversation(native.previous_response_id, key_id)
    return to_chat_request(chat)


def answer(response: ChatResponse, model: str, chat: ChatRequest, request_id: str) -> bytes:
    """The ``response`` object of a non-streamed answer (stored when the request says so)."""
    obj = render_response(chat.native, response, rid=request_id, model=model)
    remember(chat.native, obj)
    return orjson.dumps(obj)


def stream_renderer(rid: str, model: str, created: int, chat: ChatRequest) -> Any:
    return ResponsesStreamRenderer(rid, model, created, chat.native)


def _error(err: GatewayError) -> Response:
    return Response(render_error(err), status_code=err.status, media_type=_JSON)


def responses_routes(gateway: Gateway, auth: Authenticator) -> list[Route]:
    """``GET`` and ``DELETE /v1/responses/{id}`` (also without the ``/v1`` prefix)."""

    async def retrieve(request: Request) -> Response:
        try:
            key_id = auth.authenticate(request.headers)
        except GatewayError as err:
            return _error(err)
        response_id = request.path_params["response_id"]
        store = store_for(gateway)
        found = store.get(response_id, key_id) if store is not None else None
        if found is None:
            return _error(not_found(response_id))
        if request.method == "DELETE":
            assert store is not None
            store.delete(response_id, key_id)
            body = {"id": response_id, "object": "response", "deleted": True}
            return Response(orjson.dumps(body), media_type=_JSON)
        return Response(orjson.dumps(found), media_type=_JSON)

    methods = ["GET", "DELETE"]
    return [
        Route("/v1/responses/{response_id}", retrieve, methods=methods),
        Route("/responses/{response_id}", retrieve, methods=methods),
    ]
