"""``POST /v1/feedback``: a client rates one of its requests.

```json
{"request_id": "mm-...", "score": 0.0, "label": "wrong", "comment": "the sum is off by one"}
```

``request_id`` is the ``x-modelmix-request-id`` of the answer. ``score`` is a number in
[0, 1] (1: good); ``label`` a short string (``good``/``bad``, ``thumbs_up``/``thumbs_down``...
also set the score when none is given); at least one of them is needed; ``comment`` is free
text. Keys work as on the chat endpoints; a virtual key may rate only the requests made with
it (anonymous callers, where keys are optional, only anonymous requests), the admin key any.
The answer is ``201`` with the stored feedback; errors use the OpenAI error format (400 bad
body, 401 bad key, 403 someone else's request, 404 unknown request id).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.errors import GatewayError
from modelmix.quality.store import CLIENT_APIS, label_score
from modelmix.server.auth import ADMIN_KEY_ID, Authenticator
from modelmix.wire.openai_chat.client import render_error

if TYPE_CHECKING:
    from modelmix.gateway import Gateway

JSON = "application/json"
_FIELDS = frozenset({"request_id", "score", "label", "comment"})
MAX_COMMENT = 4000
MAX_LABEL = 64
MAX_BODY = 64 * 1024


def _error(err: GatewayError) -> Response:
    return Response(render_error(err), status_code=err.status, media_type=JSON)


def parse_feedback(data: Any) -> tuple[str, float | None, str | None, str | None]:
    """(request id, score, label, comment) from the body; raises ``GatewayError``."""
    if not isinstance(data, dict):
        raise GatewayError("invalid_request", "The body must be a JSON object.")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise GatewayError(
            "invalid_request", f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0]
        )
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise GatewayError(
            "invalid_request",
            "request_id is required: the x-modelmix-request-id header of the answer.",
            param="request_id",
        )
    score = data.get("score")
    if score is not None:
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            raise GatewayError("invalid_request", "score must be a number.", param="score")
        if not 0 <= score <= 1:
            raise GatewayError(
                "invalid_request", "score must be between 0 and 1 (1: good).", param="score"
            )
        score = float(score)
    label = data.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise GatewayError("invalid_request", "label must be a non-empty string.", param="label")
    if label is not None and len(label) > MAX_LABEL:
        raise GatewayError(
            "invalid_request", f"label is longer than {MAX_LABEL} characters.", param="label"
        )
    if score is None and label is None:
        raise GatewayError(
            "invalid_request", "Give a score (0 to 1) or a label, or both.", param="score"
        )
    if score is None:
        score = label_score(label)
    comment = data.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise GatewayError("invalid_request", "comment must be a string.", param="comment")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise GatewayError(
            "invalid_request",
            f"comment is longer than {MAX_COMMENT} characters.",
            param="comment",
        )
    return request_id.strip(), score, label, comment


def feedback_routes(gateway: Gateway, auth: Authenticator) -> list[Route]:
    async def feedback(request: Request) -> Response:
        try:
            key_id = auth.authenticate(request.headers)
            raw = await request.body()
            if len(raw) > MAX_BODY:
                raise GatewayError(
                    "request_too_large",
                    f"Feedback body exceeds {MAX_BODY} bytes.",
                    code="request_too_large",
                )
            try:
                data = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError as exc:
                raise GatewayError(
                    "invalid_request", f"Body is not valid JSON: {exc}", code="invalid_json"
                ) from None
            request_id, score, label, comment = parse_feedback(data)
            quality = gateway.quality
            if quality is None or gateway.ledger is None:
                raise GatewayError("not_found", "This gateway runs without a ledger: no feedback.")
            owner = await asyncio.to_thread(quality.store.request_owner, request_id)
            if owner is None:  # maybe still queued for the ledger: flush and look again
                await asyncio.to_thread(gateway.ledger.flush)
                owner = await asyncio.to_thread(quality.store.request_owner, request_id)
            if owner is None or owner.api not in CLIENT_APIS:
                raise GatewayError(
                    "not_found",
                    f"No request with id {request_id!r}.",
                    param="request_id",
                    code="request_not_found",
                )
            if key_id != ADMIN_KEY_ID and owner.key_id != key_id:
                raise GatewayError(
                    "permission",
                    "This key may only rate its own requests.",
                    param="request_id",
                    code="not_your_request",
                )
            stored = await asyncio.to_thread(
                quality.store.add_feedback, request_id, key_id, score, label, comment
            )
        except GatewayError as err:
            return _error(err)
        return Response(orjson.dumps(stored), status_code=201, media_type=JSON)

    return [
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
    ]
