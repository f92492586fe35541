"""Prometheus metrics: one more sink of finished ledger records.

The engine hands every finished ``RequestRecord`` to the gateway, which passes it to the ledger
and to ``Metrics.observe``; nothing else in the hot path knows about metrics. ``observe`` only
bumps counters and histograms through label children bound once and cached per label tuple.

Every label set is bounded: model and route names come from the config (anything else is
reported as ``"other"``), statuses and error kinds from fixed lists, budget series are capped.
Each ``Metrics`` owns its own registry, so several gateways can live in one process.

Series (counters get ``_total``, histograms ``_bucket``/``_sum``/``_count``):

- ``modelmix_requests_total{route, model, status}``: client requests; ``model`` is the model
  that answered (or the last one tried, or ``"none"``), ``route`` is ``"none"`` when the client
  named a model directly.
- ``modelmix_upstream_attempts_total{model, status, error_kind}``: calls to upstreams.
- ``modelmix_tokens_total{model, kind}``: per upstream attempt; ``kind`` is ``prompt`` (all
  input), ``completion`` (all output), and the parts ``cached``, ``cache_write``, ``reasoning``.
- ``modelmix_cost_usd_total{model, route}``: priced attempts' cost.
- ``modelmix_request_duration_seconds{route}``, ``modelmix_request_ttft_seconds{route}``: what
  the client saw (time to the whole answer / to its first token, failovers included).
- ``modelmix_time_to_first_token_seconds{model}``: per upstream attempt that produced a first
  token (streams) or an answer (non-streams).
- ``modelmix_upstream_attempt_duration_seconds{model}``.
- ``modelmix_fallbacks_total{route}``: answered by another model than the first one tried,
  because that one failed (a cascade's accepted voter or escalation is not a fallback).
- ``modelmix_cascade_escalations_total{route}``: cascades that escalated to the strong tier.
- ``modelmix_errors_total{route, http_status}``: requests that ended in an error.
- ``modelmix_budget_remaining_usd{scope, name}``: set by the budget code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from modelmix.errors import UpstreamErrorKind
from modelmix.ledger.records import RequestRecord

if TYPE_CHECKING:
    from modelmix.config import Config

OTHER = "other"
NONE = "none"

#: Seconds; LLM calls run from tens of milliseconds to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

REQUEST_STATUSES = ("ok", "error", "client_closed")
ATTEMPT_STATUSES = ("ok", "error", "cut", "client_closed")
ERROR_KINDS = (NONE, *get_args(UpstreamErrorKind))
BUDGET_SCOPES = ("global", "key", "team", "tag", "route", "model")
#: Past this many distinct (scope, name) budget series, new ones are not reported.
MAX_BUDGET_SERIES = 1000

_TOKEN_KINDS = ("prompt", "completion", "cached", "cache_write", "reasoning")


def _bounded(names: Iterable[str], extra: Iterable[str] = ()) -> dict[str, str]:
    """name -> label value for the allowed names; look up with ``.get(name, OTHER)``."""
    return {n: n for n in (*names, *extra)}


class Metrics:
    def __init__(
        self,
        models: Iterable[str] = (),
        routes: Iterable[str] = (),
        *,
        max_budget_series: int = MAX_BUDGET_SERIES,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._models = _bounded(models)
        self._routes = _bounded(routes)
        self._req_status = _bounded(REQUEST_STATUSES)
        self._att_status = _bounded(ATTEMPT_STATUSES)
        self._error_kinds = _bounded(ERROR_KINDS)
        self._scopes = _bounded(BUDGET_SCOPES)
        self._max_budget_series = max_budget_series
        r = self.registry

        self.requests = Counter(
            "modelmix_requests", "Client requests.", ("route", "model", "status"), registry=r
        )
        self.attempts = Counter(
            "modelmix_upstream_attempts",
            "Calls to upstream deployments (a retry is another attempt).",
            ("model", "status", "error_kind"),
            registry=r,
        )
        self.tokens = Counter(
            "modelmix_tokens",
            "Tokens of upstream attempts; cached, cache_write and reasoning are parts of "
            "prompt / completion.",
            ("model", "kind"),
            registry=r,
        )
        self.cost = Counter(
            "modelmix_cost_usd",
            "Cost of priced upstream attempts, USD.",
            ("model", "route"),
            registry=r,
        )
        self.request_duration = Histogram(
            "modelmix_request_duration_seconds",
            "Client request latency until the whole answer (or the error).",
            ("route",),
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.request_ttft = Histogram(
            "modelmix_request_ttft_seconds",
            "Time until the client got the first token (or the answer), failovers included.",
            ("route",),
            registry=r,
            buckets=TTFT_BUCKETS,
        )
        self.ttft = Histogram(
            "modelmix_time_to_first_token_seconds",
            "Upstream attempts' time to first token (streams) or to the answer (non-streams).",
            ("model",),
            registry=r,
            buckets=TTFT_BUCKETS,
        )
        self.attempt_duration = Histogram(
            "modelmix_upstream_attempt_duration_seconds",
            "Upstream attempt latency until the whole answer (or the error).",
            ("model",),
            registry=r,
            buckets=DURATION_BUCKETS,
        )
        self.fallbacks = Counter(
            "modelmix_fallbacks",
            "Requests answered by another model because the first one tried failed.",
            ("route",),
            registry=r,
        )
        self.escalations = Counter(
            "modelmix_cascade_escalations",
            "Cascade requests escalated to the strong tier.",
            ("route",),
            registry=r,
        )
        self.errors = Counter(
            "modelmix_errors",
            "Requests that ended in an error.",
            ("route", "http_status"),
            registry=r,
        )
        self.budget_remaining = Gauge(
            "modelmix_budget_remaining_usd",
            "Budget left in the current period, USD.",
            ("scope", "name"),
            registry=r,
        )

        # Label children, bound once per label tuple.
        self._c_requests: dict[tuple[str, str, str], Counter] = {}
        self._c_attempts: dict[tuple[str, str, str], Counter] = {}
        self._c_tokens: dict[tuple[str, str], Counter] = {}
        self._c_cost: dict[tuple[str, str], Counter] = {}
        self._c_request_duration: dict[str, Histogram] = {}
        self._c_request_ttft: dict[str, Histogram] = {}
        self._c_ttft: dict[str, Histogram] = {}
        self._c_attempt_duration: dict[str, Histogram] = {}
        self._c_fallbacks: dict[str, Counter] = {}
        self._c_escalations: dict[str, Counter] = {}
        self._c_errors: dict[tuple[str, str], Counter] = {}
        self._c_budget: dict[tuple[str, str], Gauge] = {}

    @classmethod
    def for_config(cls, config: Config) -> Metrics:
        """Label sets bounded by the config's model and route names."""
        return cls(models=[m.name for m in config.models], routes=[r.name for r in config.routes])

    # -- the sink ----------------------------------------------------------------------------

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request and its attempts."""
        models = self._models
        route_name = record.route
        if route_name is None and record.requested_model in self._routes:
            route_name = record.requested_model  # failed before routing (bad input, bad key)
        route = NONE if route_name is None else self._routes.get(route_name, OTHER)

        attempts = record.attempts
        final = record.final_model
        if final is not None:
            model = models.get(final, OTHER)
        elif attempts:
            model = models.get(attempts[-1].model, OTHER)
        else:
            model = NONE
        status = self._req_status.get(record.status, OTHER)

        key3 = (route, model, status)
        c = self._c_requests.get(key3)
        if c is None:
            c = self._c_requests[key3] = self.requests.labels(*key3)
        c.inc()

        if record.latency_ms is not None:
            h = self._c_request_duration.get(route)
            if h is None:
                h = self._c_request_duration[route] = self.request_duration.labels(route)
            h.observe(record.latency_ms / 1000.0)
        if record.ttft_ms is not None:
            h = self._c_request_ttft.get(route)
            if h is None:
                h = self._c_request_ttft[route] = self.request_ttft.labels(route)
            h.observe(record.ttft_ms / 1000.0)

        if record.status == "error":
            code = record.http_status
            key2 = (route, str(code) if 100 <= code <= 599 else OTHER)
            c = self._c_errors.get(key2)
            if c is None:
                c = self._c_errors[key2] = self.errors.labels(*key2)
            c.inc()

        if attempts:
            for a in attempts:
                self._observe_attempt(
                    models.get(a.model, OTHER),
                    route,
                    a.status,
                    a.error_kind,
                    a.latency_ms,
                    a.ttft_ms,
                    (
                        a.prompt_tokens,
                        a.completion_tokens,
                        a.cached_tokens,
                        a.cache_write_tokens,
                        a.reasoning_tokens,
                    ),
                    None if a.cost_usd is None else float(a.cost_usd),
                )
            first = attempts[0].model
            if (
                final is not None
                and final != first
                and not any(a.model == first and a.status == "ok" for a in attempts)
            ):
                c = self._c_fallbacks.get(route)
                if c is None:
                    c = self._c_fallbacks[route] = self.fallbacks.labels(route)
                c.inc()

        if record.decision.get("escalated") is True:
            c = self._c_escalations.get(route)
            if c is None:
                c = self._c_escalations[route] = self.escalations.labels(route)
            c.inc()

    def _observe_attempt(
        self,
        model: str,
        route: str,
        status: str,
        error_kind: str | None,
        latency_ms: float | None,
        ttft_ms: float | None,
        tokens: tuple[int, int, int, int, int],
        cost: float | None,
    ) -> None:
        key3 = (
            model,
            self._att_status.get(status, OTHER),
            NONE if error_kind is None else self._error_kinds.get(error_kind, OTHER),
        )
        c = self._c_attempts.get(key3)
        if c is None:
            c = self._c_attempts[key3] = self.attempts.labels(*key3)
        c.inc()
        if latency_ms is not None:
            h = self._c_attempt_duration.get(model)
            if h is None:
                h = self._c_attempt_duration[model] = self.attempt_duration.labels(model)
            h.observe(latency_ms / 1000.0)
        if ttft_ms is not None:
            h = self._c_ttft.get(model)
            if h is None:
                h = self._c_ttft[model] = self.ttft.labels(model)
            h.observe(ttft_ms / 1000.0)
        for kind, n in zip(_TOKEN_KINDS, tokens, strict=True):
            if n:
                key2 = (model, kind)
                c = self._c_tokens.get(key2)
                if c is None:
                    c = self._c_tokens[key2] = self.tokens.labels(*key2)
                c.inc(n)
        if cost:
            key2 = (model, route)
            c = self._c_cost.get(key2)
            if c is None:
                c = self._c_cost[key2] = self.cost.labels(*key2)
            c.inc(cost)

    # -- budgets -----------------------------------------------------------------------------

    def set_budget_remaining(self, scope: str, name: str, remaining_usd: float) -> None:
        """Report what is left of a budget (``scope``: global, key, team, tag, route, model).

        ``name`` is the key id, team, tag... (``""`` for global). Once ``max_budget_series``
        distinct budgets have been reported, further new ones are ignored (bounded series).
        """
        key = (self._scopes.get(scope, OTHER), name)
        g = self._c_budget.get(key)
        if g is None:
            if len(self._c_budget) >= self._max_budget_series:
                return
            g = self._c_budget[key] = self.budget_remaining.labels(*key)
        g.set(remaining_usd)

    def remove_budget(self, scope: str, name: str) -> None:
        """Stop reporting a budget (e.g. its key was revoked)."""
        key = (self._scopes.get(scope, OTHER), name)
        if self._c_budget.pop(key, None) is not None:
            self.budget_remaining.remove(*key)

    # -- scraping ----------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for a scrape; pass the request's Accept header to let
        Prometheus negotiate the OpenMetrics format, else the classic text format."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
