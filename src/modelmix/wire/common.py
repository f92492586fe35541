"""Helpers every wire format's upstream adapter shares: HTTP status -> error kind,
``Retry-After``, clipped error text, strict JSON-object loading, and ``both_ways`` (how
each format reads its vocabulary tables in both directions).

Neutral ground: no vendor's dialect lives here, and nothing here knows the server.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import orjson

from modelmix.errors import UpstreamError, UpstreamErrorKind

__all__ = [
    "MAX_ERROR_TEXT",
    "both_ways",
    "clip",
    "error_from_status",
    "kind_for_status",
    "loads_object",
    "raw_text",
    "retry_after_from_headers",
    "try_loads",
]

K = TypeVar("K")
V = TypeVar("V")

#: Longest vendor message (or raw body) copied into an UpstreamError.
MAX_ERROR_TEXT = 500


def kind_for_status(status: int) -> UpstreamErrorKind:
    if status == 429:
        return "rate_limit"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server"
    if status in (401, 402, 403):  # 402: the deployment's account is out of credit
        return "auth"
    if status == 408:
        return "timeout"
    return "invalid_request"


def retry_after_from_headers(headers: dict[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header(headers: dict[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def raw_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
    return text or "(empty body)"


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def error_from_status(
    status: int,
    message: str,
    headers: dict[str, str],
    kind: UpstreamErrorKind | None = None,
) -> UpstreamError:
    """The UpstreamError for a non-2xx answer; ``kind`` overrides the status mapping."""
    return UpstreamError(
        kind or kind_for_status(status),
        message,
        status=status,
        retry_after=retry_after_from_headers(headers),
    )


def loads_object(body: bytes | str) -> dict[str, Any]:
    """``orjson.loads`` that insists on a JSON object; UpstreamError("bad_response") if not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("bad_response", f"malformed JSON from upstream: {exc}") from None
    if not isinstance(data, dict):
        raise UpstreamError("bad_response", "upstream JSON is not an object")
    return data


def try_loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def both_ways(rows: tuple[tuple[K, V], ...]) -> tuple[dict[K, V], dict[V, K]]:
    """One vocabulary table read in both directions: ``(left -> right, right -> left)``.

    Where a value appears in several rows, the first row wins in each direction, so a table
    lists the name a format writes before its aliases. Built once at import: lookups stay
    plain dict lookups on the hot path.
    """
    forward: dict[K, V] = {}
    backward: dict[V, K] = {}
    for left, right in rows:
        forward.setdefault(left, right)
        backward.setdefault(right, left)
    return forward, backward
