"""Prometheus metrics: one more sink of finished ledger records.

The engine hands every finished ``RequestRecord`` to the gateway, which passes it to the ledger
and to ``Metrics.observe``; nothing else in the hot path knows about metrics. ``observe`` only
bumps plain numbers (see ``_Counters``); the registry reads them when Prometheus scrapes.

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

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from modelmix.errors import UpstreamErrorKind
from modelmix.ledger.records import AttemptRecord, RequestRecord

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


def _bounded(names: Iterable[str], extra: Iterable[str] = ()) -> dict[str, str]:
    """name -> label value for the allowed names; look up with ``.get(name, OTHER)``."""
    return {n: n for n in (*names, *extra)}


class _Counters:
    """A counter family: plain floats per label tuple, turned into a metric at scrape time.

    ``prometheus_client``'s own counters take a lock per increment and its histograms search
    their buckets in a Python loop; these are bumped only from the event loop's thread, so a
    dict update is enough (about a tenth of the cost)."""

    __slots__ = ("doc", "labels", "name", "values")

    def __init__(self, name: str, doc: str, labels: tuple[str, ...]) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def metric(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        return family


class _Histograms:
    """A histogram family: per label value, counts per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "doc", "label", "name", "series")

    def __init__(self, name: str, doc: str, label: str, bounds: tuple[float, ...]) -> None:
        self.name, self.doc, self.label, self.bounds = name, doc, label, bounds
        self.series: dict[str, list[float]] = {}  # [count per bucket..., +Inf count, sum]

    def observe(self, key: str, value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, value)] += 1  # first bound >= value ("le")
        series[-1] += value

    def metric(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=(self.label,))
        names = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        for key, series in self.series.items():
            cumulative, buckets = 0.0, []
            for name, count in zip(names, series, strict=False):
                cumulative += count
                buckets.append((name, cumulative))
            family.add_metric([key], buckets, series[-1])
        return family


class _Collector:
    """Hands the families to the registry at scrape time."""

    def __init__(self, families: list[_Counters | _Histograms]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.metric()


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

        self.requests = _Counters(
            "modelmix_requests", "Client requests.", ("route", "model", "status")
        )
        self.attempts = _Counters(
            "modelmix_upstream_attempts",
            "Calls to upstream deployments (a retry is another attempt).",
            ("model", "status", "error_kind"),
        )
        self.tokens = _Counters(
            "modelmix_tokens",
            "Tokens of upstream attempts; cached, cache_write and reasoning are parts of "
            "prompt / completion.",
            ("model", "kind"),
        )
        self.cost = _Counters(
            "modelmix_cost_usd", "Cost of priced upstream attempts, USD.", ("model", "route")
        )
        self.request_duration = _Histograms(
            "modelmix_request_duration_seconds",
            "Client request latency until the whole answer (or the error).",
            "route",
            DURATION_BUCKETS,
        )
        self.request_ttft = _Histograms(
            "modelmix_request_ttft_seconds",
            "Time until the client got the first token (or the answer), failovers included.",
            "route",
            TTFT_BUCKETS,
        )
        self.ttft = _Histograms(
            "modelmix_time_to_first_token_seconds",
            "Upstream attempts' time to first token (streams) or to the answer (non-streams).",
            "model",
            TTFT_BUCKETS,
        )
        self.attempt_duration = _Histograms(
            "modelmix_upstream_attempt_duration_seconds",
            "Upstream attempt latency until the whole answer (or the error).",
            "model",
            DURATION_BUCKETS,
        )
        self.fallbacks = _Counters(
            "modelmix_fallbacks",
            "Requests answered by another model because the first one tried failed.",
            ("route",),
        )
        self.escalations = _Counters(
            "modelmix_cascade_escalations",
            "Cascade requests escalated to the strong tier.",
            ("route",),
        )
        self.errors = _Counters(
            "modelmix_errors", "Requests that ended in an error.", ("route", "http_status")
        )
        self.registry.register(
            _Collector(
                [
                    self.requests,
                    self.attempts,
                    self.tokens,
                    self.cost,
                    self.request_duration,
                    self.request_ttft,
                    self.ttft,
                    self.attempt_duration,
                    self.fallbacks,
                    self.escalations,
                    self.errors,
                ]
            )
        )
        self.budget_remaining = Gauge(
            "modelmix_budget_remaining_usd",
            "Budget left in the current period, USD.",
            ("scope", "name"),
            registry=self.registry,
        )
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

        self.requests.inc((route, model, status))
        if record.latency_ms is not None:
            self.request_duration.observe(route, record.latency_ms / 1000.0)
        if record.ttft_ms is not None:
            self.request_ttft.observe(route, record.ttft_ms / 1000.0)
        if record.status == "error":
            code = record.http_status
            self.errors.inc((route, str(code) if 100 <= code <= 599 else OTHER))

        if attempts:
            for a in attempts:
                self._observe_attempt(models.get(a.model, OTHER), route, a)
            first = attempts[0].model
            if (
                final is not None
                and final != first
                and not any(a.model == first and a.status == "ok" for a in attempts)
            ):
                self.fallbacks.inc((route,))

        if record.decision.get("escalated") is True:
            self.escalations.inc((route,))

    def _observe_attempt(self, model: str, route: str, a: AttemptRecord) -> None:
        error_kind = a.error_kind
        self.attempts.inc(
            (
                model,
                self._att_status.get(a.status, OTHER),
                NONE if error_kind is None else self._error_kinds.get(error_kind, OTHER),
            )
        )
        if a.latency_ms is not None:
            self.attempt_duration.observe(model, a.latency_ms / 1000.0)
        if a.ttft_ms is not None:
            self.ttft.observe(model, a.ttft_ms / 1000.0)
        tokens = self.tokens
        if a.prompt_tokens:
            tokens.inc((model, "prompt"), a.prompt_tokens)
        if a.completion_tokens:
            tokens.inc((model, "completion"), a.completion_tokens)
        if a.cached_tokens:
            tokens.inc((model, "cached"), a.cached_tokens)
        if a.cache_write_tokens:
            tokens.inc((model, "cache_write"), a.cache_write_tokens)
        if a.reasoning_tokens:
            tokens.inc((model, "reasoning"), a.reasoning_tokens)
        if a.cost_usd:
            self.cost.inc((model, route), float(a.cost_usd))

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
