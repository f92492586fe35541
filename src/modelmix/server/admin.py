"""The admin API: manage virtual keys and read budget status. Admin key required.

    GET    /admin/keys                      list keys (``?include_revoked=false`` to hide revoked)
    POST   /admin/keys                      create; 201 with the plaintext ``key`` (shown once)
    GET    /admin/keys/{id_or_name}         one key
    PATCH  /admin/keys/{id_or_name}         update owner, team, tags, allowed_models, budgets,
                                            rate_limits, name
    POST   /admin/keys/{id_or_name}/rotate  new secret, same id; 200 with the new ``key``
    POST   /admin/keys/{id_or_name}/revoke  revoke (also ``DELETE /admin/keys/{id_or_name}``)
    GET    /admin/budgets                   every budget's current window: spent, in flight,
                                            remaining, pressure

Errors use the OpenAI error JSON: no key 401, a wrong key 401, a valid virtual key (not the
admin key) 403, no admin key configured 403. Money is a decimal string.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.budgets.accounting import Accounting
from modelmix.errors import GatewayError
from modelmix.ledger.keys import KeyStore
from modelmix.server.auth import Authenticator, presented_key
from modelmix.wire.openai_chat.client import render_error

__all__ = ["admin_routes"]

JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]

_CREATE_FIELDS = frozenset(
    {"name", "owner", "team", "tags", "allowed_models", "allowed_tags", "budgets", "rate_limits"}
)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(type(value).__name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=_default), status_code=status, media_type=JSON)


def _error(err: GatewayError) -> Response:
    return Response(render_error(err), status_code=err.status, media_type=JSON)


def _check_admin(auth: Authenticator, request: Request, admin_enabled: bool) -> None:
    key = presented_key(request.headers)
    if key is None:
        raise GatewayError(
            "authentication",
            "Missing API key: the admin API needs the admin key "
            "('Authorization: Bearer <key>' or 'x-api-key').",
            code="missing_api_key",
        )
    if auth.is_admin(key):
        return
    if not admin_enabled:
        raise GatewayError(
            "permission",
            "The admin API is disabled: no admin key is configured (server.admin_key_env).",
            code="admin_disabled",
        )
    if auth.keystore is not None and auth.keystore.verify(key) is not None:
        raise GatewayError(
            "permission", "This endpoint needs the admin key.", code="admin_key_required"
        )
    raise GatewayError("authentication", "Invalid API key.", code="invalid_api_key")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError("invalid_request", f"Body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayError("invalid_request", "Body must be a JSON object.")
    unknown = set(data) - _CREATE_FIELDS
    if unknown:
        raise GatewayError(
            "invalid_request",
            f"Unknown field(s): {', '.join(sorted(unknown))}.",
            param=sorted(unknown)[0],
        )
    for name in ("tags", "allowed_models", "allowed_tags", "budgets"):
        if name in data and not isinstance(data[name], list):
            raise GatewayError("invalid_request", f"{name} must be a list.", param=name)
    for name in ("name", "owner", "team"):
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise GatewayError("invalid_request", f"{name} must be a string.", param=name)
    if "rate_limits" in data and not isinstance(data["rate_limits"], dict):
        raise GatewayError("invalid_request", "rate_limits must be an object.", param="rate_limits")
    return data


def admin_routes(
    keys: KeyStore | None,
    auth: Authenticator,
    accounting: Accounting | None = None,
    *,
    admin_enabled: bool = True,
) -> list[Route]:
    """The admin API's routes, to add to the gateway's Starlette app. ``admin_enabled``:
    whether an admin key is configured (without one every call is refused with 403)."""

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                _check_admin(auth, request, admin_enabled)
                return await handler(request)
            except GatewayError as err:
                return _error(err)
            except ValueError as exc:
                return _error(GatewayError("invalid_request", str(exc)))

        return run

    def store() -> KeyStore:
        if keys is None:
            raise GatewayError("not_found", "This gateway runs without a ledger: no keys.")
        return keys

    def missing(ident: str) -> GatewayError:
        return GatewayError(
            "not_found", f"No active key with id or name {ident!r}.", code="key_not_found"
        )

    async def list_keys(request: Request) -> Response:
        include = request.query_params.get("include_revoked", "true").lower() != "false"
        infos = store().list(include_revoked=include)
        return _json({"object": "list", "data": [k.to_dict() for k in infos]})

    async def create_key(request: Request) -> Response:
        data = await _body(request)
        name = data.get("name")
        if not name:
            raise GatewayError("invalid_request", "A key needs a name.", param="name")
        try:
            info, plaintext = store().create(
                name,
                owner=data.get("owner"),
                team=data.get("team"),
                tags=data.get("tags") or (),
                allowed_models=data.get("allowed_models") or (),
                allowed_tags=data.get("allowed_tags") or (),
                budgets=data.get("budgets") or (),
                rate_limit=data.get("rate_limits"),
            )
        except ValueError as exc:
            raise GatewayError("invalid_request", str(exc)) from None
        return _json({**info.to_dict(), "key": plaintext}, status=201)

    async def get_key(request: Request) -> Response:
        ident = request.path_params["ident"]
        info = store().get(ident)
        if info is None:
            raise missing(ident)
        return _json(info.to_dict())

    async def update_key(request: Request) -> Response:
        ident = request.path_params["ident"]
        data = await _body(request)
        try:
            info = store().update(
                ident,
                name=data.get("name"),
                owner=data.get("owner"),
                team=data.get("team"),
                tags=data.get("tags"),
                allowed_models=data.get("allowed_models"),
                allowed_tags=data.get("allowed_tags"),
                budgets=data.get("budgets"),
                rate_limit=data.get("rate_limits"),
            )
        except KeyError:
            raise missing(ident) from None
        return _json(info.to_dict())

    async def rotate_key(request: Request) -> Response:
        ident = request.path_params["ident"]
        try:
            info, plaintext = store().rotate(ident)
        except KeyError:
            raise missing(ident) from None
        return _json({**info.to_dict(), "key": plaintext})

    async def revoke_key(request: Request) -> Response:
        ident = request.path_params["ident"]
        if not store().revoke(ident):
            raise missing(ident)
        return _json({"id": ident, "revoked": True})

    async def budget_status(request: Request) -> Response:
        if accounting is None:
            return _json({"object": "list", "data": []})
        rows = await run_in_threadpool(accounting.status)
        return _json({"object": "list", "data": rows})

    return [
        Route("/admin/keys", guarded(list_keys), methods=["GET"]),
        Route("/admin/keys", guarded(create_key), methods=["POST"]),
        Route("/admin/keys/{ident}", guarded(get_key), methods=["GET"]),
        Route("/admin/keys/{ident}", guarded(update_key), methods=["PATCH"]),
        Route("/admin/keys/{ident}", guarded(revoke_key), methods=["DELETE"]),
        Route("/admin/keys/{ident}/rotate", guarded(rotate_key), methods=["POST"]),
        Route("/admin/keys/{ident}/revoke", guarded(revoke_key), methods=["POST"]),
        Route("/admin/budgets", guarded(budget_status), methods=["GET"]),
    ]
