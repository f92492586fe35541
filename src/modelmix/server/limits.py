"""Bounds on what one parsed chat request may carry into the gateway and its ledger.

Called by the chat endpoint once the body is parsed and the ``x-modelmix-tag-*`` headers are
merged into the metadata (issue 14, finding 1 and 6): the number and length of tags, the
length of the ``user`` field, and integer parameters that the upstream request could not
encode (orjson writes integers of at most 64 bits; a ``seed`` of 2^64 would otherwise fail
as a 500 when the upstream request is built). A few comparisons per request: no copies.
Every refusal is a ``GatewayError`` (400) naming the parameter, rendered in the client's format.
"""

from __future__ import annotations

from modelmix.config import LimitsConfig
from modelmix.errors import GatewayError
from modelmix.types import ChatRequest

__all__ = ["INT64_MAX", "INT64_MIN", "RequestLimits"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _too_long(param: str, what: str, limit: int) -> GatewayError:
    return GatewayError(
        "invalid_request",
        f"Invalid '{param}': {what} is longer than {limit} characters.",
        param=param,
        code="string_above_max_length",
    )


class RequestLimits:
    """The configured bounds (``server.limits``), checked against one parsed request."""

    __slots__ = ("max_name", "max_tags", "max_user", "max_value")

    def __init__(self, limits: LimitsConfig) -> None:
        self.max_tags = limits.max_tags
        self.max_name = limits.max_tag_name_chars
        self.max_value = limits.max_tag_value_chars
        self.max_user = limits.max_user_chars

    def check(self, request: ChatRequest) -> None:
        """Raise ``GatewayError`` (400) if ``request`` is over a bound; the refused request's
        metadata and ``user`` are dropped first, so its ledger row stays small too."""
        try:
            self._check(request)
        except GatewayError:
            request.metadata.clear()
            request.params.pop("user", None)
            raise

    def _check(self, request: ChatRequest) -> None:
        metadata = request.metadata
        if metadata:
            self._check_tags(metadata)
        params = request.params
        user = params.get("user")
        if isinstance(user, str) and len(user) > self.max_user:
            raise _too_long("user", "the user id", self.max_user)
        for name, value in params.items():
            if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                raise GatewayError(
                    "invalid_request",
                    f"Invalid '{name}': integer out of range. Expected a value between "
                    f"{INT64_MIN} and {INT64_MAX}.",
                    param=name,
                    code="integer_out_of_range",
                )

    def _check_tags(self, metadata: dict[str, str]) -> None:
        if len(metadata) > self.max_tags:
            raise GatewayError(
                "invalid_request",
                f"Too many tags: {len(metadata)} metadata items and x-modelmix-tag-* headers "
                f"together; at most {self.max_tags}.",
                param="metadata",
                code="too_many_tags",
            )
        for name, value in metadata.items():
            if len(name) > self.max_name:
                raise _too_long("metadata", f"the tag name '{name[:32]}...'", self.max_name)
            if len(value) > self.max_value:
                raise _too_long(f"metadata.{name[:64]}", "the tag value", self.max_value)
