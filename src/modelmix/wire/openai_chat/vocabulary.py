"""OpenAI Chat Completions vocabulary: finish reasons and error types, one table each.

The canonical finish reasons are OpenAI's own, so the client codec writes them as they are;
the table still says so in one place, with ``function_call`` (the deprecated name) as an alias
that is read but never written.
"""

from __future__ import annotations

from modelmix.errors import STATUS_BY_KIND
from modelmix.types import FinishReason
from modelmix.wire.common import both_ways

__all__ = [
    "CONTENT_FILTER_CODES",
    "ERROR_TYPES",
    "FINISH_REASON",
    "FINISH_REASONS",
    "TYPE_FOR_STATUS",
    "WIRE_FINISH",
]

#: ``finish_reason`` on the wire <-> canonical; the first row of a reason is the one written.
FINISH_REASONS: tuple[tuple[str, FinishReason], ...] = (
    ("stop", "stop"),
    ("length", "length"),
    ("tool_calls", "tool_calls"),
    ("content_filter", "content_filter"),
    ("function_call", "tool_calls"),
)
#: wire -> canonical (upstream side) and canonical -> wire (client and simulated sides).
FINISH_REASON, WIRE_FINISH = both_ways(FINISH_REASONS)

#: Error ``code`` (or ``type``) values that mean the provider's safety filter refused.
CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})

#: OpenAI's own ``type`` (and default ``code``) per error kind. OpenAI reports 401/403/404/413
#: as ``invalid_request_error`` (a bad key is ``code: invalid_api_key``), 429 with the limit
#: that was hit as the type (``requests``) and ``code: rate_limit_exceeded``, and every 5xx
#: as ``server_error``. Clients branch on the HTTP status; the SDK maps it to its exceptions.
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "permission": ("invalid_request_error", None),
    "not_found": ("invalid_request_error", None),
    "method_not_allowed": ("invalid_request_error", "method_not_allowed"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "unprocessable": ("invalid_request_error", None),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "upstream": ("server_error", None),
    "overloaded": ("server_error", "overloaded"),
    "unavailable": ("server_error", "model_unavailable"),
    "timeout": ("server_error", "timeout"),
    "internal": ("server_error", None),
}

#: The same table by HTTP status (first kind of a status wins): the ``type`` a vendor's error
#: body carries for that status (the simulated upstream's side).
TYPE_FOR_STATUS: dict[int, str] = {}
for _kind, (_type, _code) in ERROR_TYPES.items():
    TYPE_FOR_STATUS.setdefault(STATUS_BY_KIND[_kind], _type)
