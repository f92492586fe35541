"""``/v1/responses`` in the server: the Responses API's ``ApiFormat`` hooks (the stored
conversation on the way in, storing on the way out) and the routes for stored responses
(``GET`` and ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``).

``POST /v1/responses`` is one of the chat endpoints (server/chat.py: parse -> ``Gateway.run``
-> render). Parsing is the codec's ``parse_responses_request`` followed by ``prepare``, which
loads the conversation ``previous_response_id`` stands for and builds the complete canonical
request; rendering (``render``, or the stream renderer's end) stores the answer when the
request asks for it. The codec is ``wire/openai_responses``; the table,
``ledger/stored_responses.py``, lives in the ledger's database (SQLite or PostgreSQL), opened
on first use; a gateway without a ledger stores nothing and answers ``store: false``.
"""

from __future__ import annotations

import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.errors import GatewayError
from modelmix.ledger.stored_responses import ResponseStore, not_found
from modelmix.types import ChatRequest, ChatResponse
from modelmix.wire.openai_chat.client import render_error
from modelmix.wire.openai_responses.input_items import input_items_page, parse_page_query
from modelmix.wire.openai_responses.render import render_response
from modelmix.wire.openai_responses.request import ResponsesRequest, to_chat_request
from modelmix.wire.openai_responses.stream import ResponsesStreamRenderer

if TYPE_CHECKING:
    from modelmix.gateway import Gateway
    from modelmix.server.auth import Authenticator

__all__ = ["prepare", "render", "responses_routes", "store_for", "stream_renderer"]

_JSON = "application/json"

_STORES: weakref.WeakKeyDictionary[Any, ResponseStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def store_for(gateway: Gateway) -> ResponseStore | None:
    """The store of a gateway that keeps a ledger (None without one), opened on first use."""
    if gateway.ledger is None:
        return None
    with _STORES_LOCK:
        store = _STORES.get(gateway)
        if store is None:
            store = _STORES[gateway] = ResponseStore(gateway.config.ledger_location)
            weakref.finalize(gateway, store.close)
        return store


def prepare(gateway: Gateway, chat: ChatRequest, key_id: str | None) -> ChatRequest:
    """The complete canonical request: the store attached, the conversation of
    ``previous_response_id`` loaded before this input."""
    native: ResponsesRequest = chat.responses
    native.key_id = key_id
    native.store_ref = store_for(gateway)
    if native.store_ref is None:  # a gateway without a ledger stores nothing, and says so
        native.store = False
    if native.previous_response_id is not None:
        if native.store_ref is None:
            raise not_found(native.previous_response_id, "previous_response_id")
        native.history = native.store_ref.conversation(native.previous_response_id, key_id)
    return to_chat_request(chat)


def _remember(native: ResponsesRequest, response: dict[str, Any]) -> None:
    """Store a finished response when the request asked for it (``store``, on by default)."""
    store: ResponseStore | None = native.store_ref
    if not native.store or store is None:
        return
    store.save(
        response,
        [*native.items, *response["output"]],
        request_id=response["id"].removeprefix("resp_"),
        key_id=native.key_id,
        previous=native.previous_response_id,
    )


def render(response: ChatResponse, model: str, chat: ChatRequest, request_id: str) -> bytes:
    """The ``response`` object of a non-streamed answer (stored when the request says so)."""
    obj = render_response(chat.responses, response, rid=request_id, model=model)
    _remember(chat.responses, obj)
    return orjson.dumps(obj)


def stream_renderer(rid: str, model: str, created: int, chat: ChatRequest) -> Any:
    """The SSE event renderer; its final ``response`` object is stored like ``render``'s."""
    native: ResponsesRequest = chat.responses
    return ResponsesStreamRenderer(rid, model, created, native, partial(_remember, native))


def _error(err: GatewayError) -> Response:
    return Response(render_error(err), status_code=err.status, media_type=_JSON)


def responses_routes(gateway: Gateway, auth: Authenticator) -> list[Route]:
    """``GET`` and ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items`` (also
    without the ``/v1`` prefix)."""

    async def retrieve(request: Request) -> Response:
        try:
            key_id = auth.authenticate(request.headers)
        except GatewayError as err:
            return _error(err)
        response_id = request.path_params["response_id"]
        store = store_for(gateway)
        found = None
        if store is not None:  # off the event loop: a PostgreSQL ledger is a round trip away
            found = await run_in_threadpool(store.get, response_id, key_id)
        if found is None:
            return _error(not_found(response_id))
        if request.method == "DELETE":
            assert store is not None
            await run_in_threadpool(store.delete, response_id, key_id)
            body = {"id": response_id, "object": "response", "deleted": True}
            return Response(orjson.dumps(body), media_type=_JSON)
        return Response(orjson.dumps(found), media_type=_JSON)

    async def input_items(request: Request) -> Response:
        try:
            key_id = auth.authenticate(request.headers)
            query = parse_page_query(request.query_params)
        except GatewayError as err:
            return _error(err)
        response_id = request.path_params["response_id"]
        store = store_for(gateway)
        items = None
        if store is not None:
            items = await run_in_threadpool(store.input_items, response_id, key_id)
        if items is None:
            return _error(not_found(response_id))
        try:
            page = input_items_page(items, response_id, query)
        except GatewayError as err:
            return _error(err)
        return Response(orjson.dumps(page), media_type=_JSON)

    methods = ["GET", "DELETE"]
    return [
        Route("/v1/responses/{response_id}", retrieve, methods=methods),
        Route("/responses/{response_id}", retrieve, methods=methods),
        Route("/v1/responses/{response_id}/input_items", input_items, methods=["GET"]),
        Route("/responses/{response_id}/input_items", input_items, methods=["GET"]),
    ]
