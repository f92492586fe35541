"""The dashboard's routes: ``/ui`` (HTML), ``/ui/api/summary`` (its data as JSON), a login form.

Admin key required. A client may send it like any API call (``Authorization: Bearer`` or
``x-api-key``) or as ``?key=``; a browser can also sign in with the form at ``/ui``. A valid
key given as ``?key=`` or through the form is exchanged for a random session cookie
(HttpOnly, SameSite=Strict, path ``/ui``, 12 hours, kept in memory only) and the browser is
redirected to a URL without the key; the key itself is never stored, echoed or logged.
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from modelmix.dashboard.data import DEFAULT_RANGE, RANGES, collect
from modelmix.dashboard.page import login_page, render_page
from modelmix.gateway import Gateway
from modelmix.server.auth import Authenticator, presented_key

__all__ = ["COOKIE", "dashboard_routes"]

COOKIE = "modelmix_ui"
SESSION_SECONDS = 12 * 3600
_MAX_SESSIONS = 1000
_NO_STORE = {"cache-control": "no-store"}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(type(value).__name__)


class _Sessions:
    """Random session ids for browsers that signed in with the admin key (memory only)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def new(self) -> str:
        now = time.monotonic()
        if len(self._expiry) >= _MAX_SESSIONS:
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            while len(self._expiry) >= _MAX_SESSIONS:
                self._expiry.pop(next(iter(self._expiry)))
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + SESSION_SECONDS
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self._expiry.get(token)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._expiry[token]
            return False
        return True


def dashboard_routes(gateway: Gateway, auth: Authenticator) -> list[Route]:
    """``GET /ui``, ``GET /ui/api/summary``, ``POST /ui/login``; register on the Starlette app."""
    sessions = _Sessions()

    def _signed_cookie(response: Response, request: Request) -> Response:
        response.set_cookie(
            COOKIE,
            sessions.new(),
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def _status(request: Request) -> int | None:
        """None when the caller is the admin, else 401 (no key) or 403 (not the admin key)."""
        if sessions.valid(request.cookies.get(COOKIE)):
            return None
        client = request.client.host if request.client else None
        if auth.open_locally(client, request.headers.get("host")):  # issue 12: keyless loopback
            return None
        key = presented_key(request.headers) or request.query_params.get("key")
        if key is None:
            return 401
        return None if auth.is_admin(key) else 403

    def _range(request: Request) -> str | None:
        name = request.query_params.get("range", DEFAULT_RANGE)
        return name if name in RANGES else None

    def _without_key(request: Request) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        return request.url.path + (("?" + urlencode(params)) if params else "")

    async def page(request: Request) -> Response:
        status = _status(request)
        if status is not None:
            message = (
                "Enter the admin key to open the dashboard."
                if status == 401
                else "That is not the admin key."
            )
            return HTMLResponse(login_page(message), status_code=status, headers=_NO_STORE)
        if "key" in request.query_params:
            # Trade the key in the address bar for a session cookie, and drop it from the URL.
            redirect = RedirectResponse(_without_key(request), status_code=303)
            return _signed_cookie(redirect, request)
        range_name = _range(request)
        if range_name is None:
            return HTMLResponse(
                f"range must be one of {', '.join(RANGES)}", status_code=400, headers=_NO_STORE
            )
        data = await run_in_threadpool(collect, gateway, range_name)
        return HTMLResponse(render_page(data), headers=_NO_STORE)

    async def summary(request: Request) -> Response:
        status = _status(request)
        if status is not None:
            message = "missing admin key" if status == 401 else "not the admin key"
            body = orjson.dumps({"error": {"message": f"/ui/api/summary: {message}"}})
            return Response(body, status_code=status, media_type="application/json")
        range_name = _range(request)
        if range_name is None:
            body = orjson.dumps({"error": {"message": f"range must be one of {list(RANGES)}"}})
            return Response(body, status_code=400, media_type="application/json")
        data = await run_in_threadpool(collect, gateway, range_name)
        return Response(
            orjson.dumps(data, default=_json_default),
            media_type="application/json",
            headers=_NO_STORE,
        )

    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        if not auth.is_admin(key or None):
            message = "That is not the admin key." if key else "Enter the admin key."
            return HTMLResponse(
                login_page(message), status_code=403 if key else 401, headers=_NO_STORE
            )
        return _signed_cookie(RedirectResponse("/ui", status_code=303), request)

    return [
        Route("/ui", page, methods=["GET"]),
        Route("/ui/api/summary", summary, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
    ]
