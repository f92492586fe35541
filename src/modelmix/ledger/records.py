"""What the ledger stores: one row per client request, one per upstream attempt.

The engine fills these in as a request runs; the ledger writer persists them off the hot
path. Plain dataclasses so building them costs next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class AttemptRecord:
    """One call to one upstream deployment (a retry is a new attempt)."""

    request_id: str
    seq: int  # 0, 1, 2... in the order the attempts were made
    model: str  # portfolio model name
    deployment: str  # deployment id, e.g. "gpt-4o-mini#0"
    provider: str  # adapter kind
    upstream_model: str
    started_at: float  # unix seconds
    latency_ms: float | None = None  # until the full answer (or the error)
    ttft_ms: float | None = None  # time to first token (streams) or to the answer
    status: str = "ok"  # "ok" | "error" | "cut" (stream failed after the first byte)
    http_status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None  # None when the price is unknown
    price_source: str | None = None  # e.g. "genai-prices:openai/gpt-4o-mini" or "config"
    usage_estimated: bool = False  # the upstream reported no usage: tokens were estimated


@dataclass(slots=True)
class RequestRecord:
    """One client request, whatever happened to it."""

    id: str
    started_at: float  # unix seconds
    api: str  # "openai" | "anthropic" | "responses" | "library"
    requested_model: str  # what the client asked for (a model or a route name)
    route: str | None = None  # the route name, when the model named a route
    stream: bool = False
    key_id: str | None = None  # virtual key id (never the key)
    config_hash: str = ""
    #: The routing decision: candidates considered, in order, with why each was kept or
    #: skipped, e.g. [{"model": "a", "eligible": True}, {"model": "b", "eligible": False,
    #: "reason": "no tool support"}]. Later strategies add predictions here.
    decision: dict[str, Any] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    status: str = "ok"  # "ok" | "error"
    http_status: int = 200
    error: str | None = None
    final_model: str | None = None  # the portfolio model whose answer was returned
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)  # sum over all attempts that cost something
    metadata: dict[str, str] = field(default_factory=dict)
    #: Spend attribution: the key's team, and the request's tags (the key's tags, request
    #: metadata as ``name:value``, ``x-modelmix-tag-*`` headers, ``user:<id>``).
    team: str | None = None
    tags: tuple[str, ...] = ()
    #: How far ``cost_usd`` can be trusted: ``exact`` (every token priced as billed),
    #: ``estimated`` (a price or a token count is an estimate: the catalog bills something the
    #: usage does not carry, the model was priced by name, or a stream ended before the
    #: upstream reported usage), ``unknown`` (tokens at an unknown price: a lower bound).
    cost_confidence: str = "exact"
    #: The routing policy version serving the request (a canary's arm overrides it through
    #: ``decision["policy_version"]``).
    policy_version: str | None = None
    #: A response-cache hit: the cost of the answer when it was first made (``cost_usd`` is
    #: 0); None for every request that was not served from the cache.
    saved_usd: Decimal | None = None

    @property
    def unpriced(self) -> bool:
        """True when some attempt used tokens at no known price: ``cost_usd`` is then only a
        lower bound."""
        return any(
            a.cost_usd is None and (a.prompt_tokens or a.completion_tokens) for a in self.attempts
        )
