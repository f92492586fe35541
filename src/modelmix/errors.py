"""Errors that cross layers.

``GatewayError`` is what a client gets back: the server renders it in the client's own API
format (OpenAI or Anthropic error JSON) with ``status``. ``UpstreamError`` is what a provider
call raised; the engine decides whether to retry, fail over or give up, and maps the last one
to a ``GatewayError``. ``UnsupportedParameter`` is raised by a provider adapter that cannot
honour part of a request: the engine skips that model (with the reason in the ledger) rather
than dropping the parameter silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from modelmix.budgets.accounting import Admission
    from modelmix.ledger.records import RequestRecord

ErrorKind = Literal[
    "invalid_request",  # 400
    "authentication",  # 401
    "permission",  # 403
    "not_found",  # 404
    "method_not_allowed",  # 405
    "request_too_large",  # 413
    "unprocessable",  # 422
    "rate_limit",  # 429
    "upstream",  # 502
    "overloaded",  # 503 (Anthropic's format: 529)
    "unavailable",  # 503: no model of the request can be called (e.g. its key is not set)
    "timeout",  # 504
    "internal",  # 500, only for bugs
]

STATUS_BY_KIND: dict[str, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_too_large": 413,
    "unprocessable": 422,
    "rate_limit": 429,
    "upstream": 502,
    "overloaded": 503,
    "unavailable": 503,
    "timeout": 504,
    "internal": 500,
}


class ModelmixError(Exception):
    """Base of every error modelmix raises on purpose."""


class GatewayError(ModelmixError):
    """An error to show the client, in its own API's format."""

    #: Set by ``Gateway.run`` when a request fails: its (emitted) ledger record, and its
    #: admission once admitted (whose headers go on the error response).
    record: RequestRecord | None = None
    admission: Admission | None = None

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS_BY_KIND[self.kind]


UpstreamErrorKind = Literal[
    "rate_limit",  # 429: retryable, may carry retry_after
    "overloaded",  # 503 / Anthropic 529: retryable
    "server",  # other 5xx: retryable
    "timeout",  # connect, first-token or total timeout: retryable
    "connection",  # refused, reset, DNS: retryable
    "bad_response",  # malformed JSON or stream, cut stream: retryable
    "invalid_request",  # 400/404/413/422: the request itself was refused; not retryable
    "auth",  # 401/403: the gateway's upstream key is wrong; not retryable on this deployment
    "content_filter",  # refused by the provider's safety filter; not retryable
]

_RETRYABLE = {"rate_limit", "overloaded", "server", "timeout", "connection", "bad_response"}


class UpstreamError(ModelmixError):
    """A failed upstream call, classified so the engine can decide what to do next."""

    def __init__(
        self,
        kind: UpstreamErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind!r}, {self.message!r}, status={self.status})"


class UnsupportedParameter(ModelmixError):
    """A provider cannot honour this part of the request (e.g. ``n=2`` on Anthropic)."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason
