"""Gemini vocabulary: finish reasons and error statuses, one table each, read in both
directions (the upstream adapter reads them, the simulated side writes them)."""

from __future__ import annotations

from modelmix.errors import UpstreamErrorKind
from modelmix.types import FinishReason
from modelmix.wire.common import both_ways

__all__ = [
    "ERROR_KIND",
    "ERROR_STATUSES",
    "FINISH_REASON",
    "FINISH_REASONS",
    "STATUS_FOR_HTTP",
    "WIRE_FINISH",
]

#: ``finishReason`` <-> canonical. The first row of each side wins in that direction: ``STOP``
#: reads as ``stop`` and tool calls are written as ``STOP`` (Gemini has no reason of their own;
#: the adapter tells them by the function-call parts).
FINISH_REASONS: tuple[tuple[str, FinishReason], ...] = (
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("STOP", "tool_calls"),
    ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"),
    ("LANGUAGE", "content_filter"),
)
#: wire -> canonical (upstream side) and canonical -> wire (simulated side).
FINISH_REASON, WIRE_FINISH = both_ways(FINISH_REASONS)

#: Google's error ``status`` names, one row each: the HTTP status Google sends with it and the
#: UpstreamErrorKind it means. The first row of an HTTP status is the name written for it.
ERROR_STATUSES: tuple[tuple[str, int, UpstreamErrorKind], ...] = (
    ("INVALID_ARGUMENT", 400, "invalid_request"),
    ("FAILED_PRECONDITION", 400, "invalid_request"),
    ("OUT_OF_RANGE", 400, "invalid_request"),
    ("UNAUTHENTICATED", 401, "auth"),
    ("PERMISSION_DENIED", 403, "auth"),
    ("NOT_FOUND", 404, "invalid_request"),
    ("ALREADY_EXISTS", 409, "invalid_request"),
    ("ABORTED", 409, "server"),
    ("RESOURCE_EXHAUSTED", 429, "rate_limit"),
    ("INTERNAL", 500, "server"),
    ("UNKNOWN", 500, "server"),
    ("UNAVAILABLE", 503, "overloaded"),
    ("DEADLINE_EXCEEDED", 504, "timeout"),
)
#: status name -> UpstreamErrorKind (upstream side).
ERROR_KIND: dict[str, UpstreamErrorKind] = {row[0]: row[2] for row in ERROR_STATUSES}
#: HTTP status -> status name (simulated side).
STATUS_FOR_HTTP: dict[int, str] = {}
for _name, _http, _kind in ERROR_STATUSES:
    STATUS_FOR_HTTP.setdefault(_http, _name)
