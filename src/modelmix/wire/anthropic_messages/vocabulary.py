"""Anthropic Messages vocabulary: stop reasons and error types, one table each, read in both
directions (the upstream adapter reads them, the client codec and the simulated side write them).
"""

from __future__ import annotations

from modelmix.errors import UpstreamErrorKind
from modelmix.types import FinishReason
from modelmix.wire.common import both_ways

__all__ = [
    "ERROR_KIND",
    "ERROR_TYPES",
    "FINISH_REASON",
    "STOP_REASON",
    "STOP_REASONS",
    "TYPE_FOR_KIND",
    "TYPE_FOR_STATUS",
]

#: ``stop_reason`` <-> canonical finish reason; the first row of a reason is the one written.
STOP_REASONS: tuple[tuple[str, FinishReason], ...] = (
    ("end_turn", "stop"),
    ("max_tokens", "length"),
    ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
    ("stop_sequence", "stop"),
    ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"),
)
#: wire -> canonical (upstream side) and canonical -> wire (client and simulated sides).
FINISH_REASON, STOP_REASON = both_ways(STOP_REASONS)

#: Anthropic's error ``type`` (https://docs.claude.com/en/api/errors), one row each: its HTTP
#: status, the UpstreamErrorKind it means when an upstream sends it, and the gateway error
#: kinds (``GatewayError.kind``) rendered as it to clients. 422 has no type of its own
#: (``invalid_request_error``, as Anthropic does for other 4xx); 5xx other than 504/529 are
#: ``api_error``.
ERROR_TYPES: tuple[tuple[str, int, UpstreamErrorKind, tuple[str, ...]], ...] = (
    (
        "invalid_request_error",
        400,
        "invalid_request",
        ("invalid_request", "method_not_allowed", "unprocessable"),
    ),
    ("authentication_error", 401, "auth", ("authentication",)),
    ("billing_error", 402, "auth", ()),
    ("permission_error", 403, "auth", ("permission",)),
    ("not_found_error", 404, "invalid_request", ("not_found",)),
    ("request_too_large", 413, "invalid_request", ("request_too_large",)),
    ("rate_limit_error", 429, "rate_limit", ("rate_limit",)),
    ("api_error", 500, "server", ("upstream", "unavailable", "internal")),
    ("timeout_error", 504, "timeout", ("timeout",)),
    ("overloaded_error", 529, "overloaded", ("overloaded",)),
)
#: type -> UpstreamErrorKind (upstream side).
ERROR_KIND: dict[str, UpstreamErrorKind] = {row[0]: row[2] for row in ERROR_TYPES}
#: GatewayError kind -> type (client side).
TYPE_FOR_KIND: dict[str, str] = {kind: row[0] for row in ERROR_TYPES for kind in row[3]}
#: HTTP status -> type (simulated side).
TYPE_FOR_STATUS: dict[int, str] = {row[1]: row[0] for row in ERROR_TYPES}
