"""The errors budgets and rate limits raise: ``GatewayError``s carrying response headers.

Both use HTTP 429, which the OpenAI and Anthropic SDKs raise as ``RateLimitError`` (a
``402`` would only be a generic ``APIStatusError``; OpenAI itself answers an exhausted quota
with 429 ``insufficient_quota``). The ``code`` tells the two apart: ``budget_exceeded`` or
``rate_limit_exceeded``. A budget that will not recover soon also sends
``x-should-retry: false``, which both SDKs honour, so clients do not retry in vain.
"""

from __future__ import annotations

from modelmix.errors import GatewayError

__all__ = ["BudgetExceeded", "RateLimited"]


class BudgetExceeded(GatewayError):
    """A hard or paced budget refuses the request. ``headers`` go on the error response."""

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        retry_after: float | None,
        headers: dict[str, str],
    ) -> None:
        super().__init__("rate_limit", message, code="budget_exceeded", retry_after=retry_after)
        self.budget = budget
        self.headers = headers


class RateLimited(GatewayError):
    """A key's requests- or tokens-per-minute limit refuses the request."""

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__("rate_limit", message, code="rate_limit_exceeded", retry_after=retry_after)
        self.headers = headers
