"""Budgets and rate limits on the request path: one ``Accounting`` per gateway.

Per request (``admit``, right after the caller is authenticated; no I/O):

1. the key's record (team, tags, allowed models, budgets, rate limits) from the key store's
   in-memory cache (``KeyStore.by_id``: the entry ``verify`` just refreshed);
2. the allowed-models check (403 ``model_not_allowed``);
3. the spend attribution written on the ledger record: the key's team, and the tags from the
   key, the request metadata, ``x-modelmix-tag-*`` headers and ``user``;
4. only when a budget or a rate limit applies: the prompt tokens counted (cl100k), the cost
   estimated (``CostEstimator``: exact prompt tokens, predicted completion tokens, priced at the
   dearest model the route may use), the key's rate limits taken (429 ``rate_limit_exceeded``
   with ``x-ratelimit-*`` headers) and the estimate reserved on every budget that applies (429
   ``budget_exceeded``; soft budgets add warnings). The reservation's *pressure* goes to the
   routing strategies, which pick cheaper models as a budget runs out.

The engine asks ``Admission.admit_model`` before each model it calls (per-model limits,
shared by every key). When the request's ledger record is finished (``on_record``, called by
the gateway for every record, streams included, however they ended) the reservation is settled
with the real cost, the token buckets are corrected with the real usage, and the record's cost
confidence is set. A stream that ended before the upstream reported its usage (cut, or the
client hung up) is charged an estimate (its exact prompt tokens plus the predicted completion)
and flagged ``estimated``, so a budget is never charged nothing for tokens that were billed.

Counters live in a ``SpendStore`` / ``BucketStore``: by default the shared counters file beside
the ledger (``shared.py``), so every process serving that ledger enforces the same budgets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from modelmix.budgets.definitions import BudgetSpec
from modelmix.budgets.enforcer import BudgetContext, Budgets, Reservation
from modelmix.budgets.errors import BudgetExceeded, RateLimited
from modelmix.budgets.ledger_spend import ledger_spend_loader, request_tags
from modelmix.budgets.limits import RateLimit, RateLimiter, RateState
from modelmix.budgets.reservation import CostEstimator, count_prompt_tokens
from modelmix.budgets.tag_scope import scoped_tags
from modelmix.budgets.worst_case import StreamWatch, WorstCase
from modelmix.errors import GatewayError
from modelmix.ledger.keys import ADMIN_KEY_ID, KeyInfo, KeyStore
from modelmix.ledger.records import RequestRecord
from modelmix.routing.registry import strategy_spec
from modelmix.types import ChatRequest, Usage

if TYPE_CHECKING:
    from modelmix.budgets.config import BudgetsConfig
    from modelmix.budgets.shared import SharedTable
    from modelmix.config import RouteConfig
    from modelmix.metrics import Metrics
    from modelmix.portfolio import ModelEntry
    from modelmix.pricing import Price
    from modelmix.state.config import StateConfig
    from modelmix.state.events import SharedEvents
    from modelmix.state.link import RedisLink

__all__ = ["Accounting", "Admission"]

log = logging.getLogger("modelmix.budgets")

_ZERO = Decimal(0)
_CONFIDENCE_RANK = {"exact": 0, "estimated": 1, "unknown": 2}
#: Attempt statuses of a stream that ended before its usage arrived.
_UNFINISHED = frozenset({"cut", "client_closed"})


def _header(name: str, value: str) -> tuple[bytes, bytes]:
    return name.encode(), value.encode("latin-1", "replace")


class _Plan(NamedTuple):
    """What one request is checked against (``Accounting._plan``)."""

    ctx: BudgetContext
    specs: list[BudgetSpec]
    limit: RateLimit | None
    prompt: int
    completion: int
    estimate: Decimal
    tokens: int
    hard: bool


class Admission:
    """One admitted request's hold on its budgets and limits (see the module docstring)."""

    __slots__ = (
        "_accounting",
        "_watch",
        "completion_tokens",
        "key_id",
        "limit",
        "models",
        "prompt_tokens",
        "rate",
        "reservation",
        "tokens",
    )

    def __init__(
        self,
        accounting: Accounting | None,
        key_id: str | None = None,
        limit: RateLimit | None = None,
        reservation: Reservation | None = None,
        rate: RateState | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        self._accounting = accounting
        self.key_id = key_id
        self.limit = limit
        self.reservation = reservation
        self.rate = rate
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.tokens = prompt_tokens + completion_tokens
        #: Models admitted by their per-model limits (their buckets are corrected later).
        self.models: list[str] = []
        #: A stream's token count against a hard budget (issue 14: worst-case admission)
        self._watch: StreamWatch | None = None

    def stream_watch(self) -> StreamWatch | None:
        """For the engine's stream: cut it when it passes a hard budget (None: no hard one)."""
        return self._watch

    @property
    def pressure(self) -> float:
        """0 = no budget under pressure, 1 = a budget is at what it allows."""
        return self.reservation.pressure if self.reservation is not None else 0.0

    @property
    def warnings(self) -> list[str]:
        """Soft budgets this request went past."""
        return self.reservation.warnings if self.reservation is not None else []

    @property
    def shared_models(self) -> bool:
        """Per-model limits kept in Redis: the engine awaits ``admit_model_async``."""
        acc = self._accounting
        return acc is not None and acc.link is not None and bool(acc.limiter.models)

    def admit_model(self, model: str) -> GatewayError | None:
        """Before the engine calls ``model``: None if its per-model limits let the call go
        (the call is counted), else the 429 to treat as that model's answer (the strategy
        falls back to another model, or the client gets it)."""
        acc = self._accounting
        if acc is None or model not in acc.limiter.models:
            return None
        try:
            wait = acc.limiter.acquire_model(model, self.tokens)
        except GatewayError as err:  # shared state unreachable (fail_closed): that model's 503
            return err
        return self._model_verdict(acc.limiter, model, wait)

    async def admit_model_async(self, model: str) -> GatewayError | None:
        """``admit_model`` with the Redis round trip awaited on the event loop."""
        acc = self._accounting
        if acc is None or model not in acc.limiter.models:
            return None
        try:
            wait = await acc.limiter.acquire_model_async(model, self.tokens)
        except GatewayError as err:  # shared state unreachable (fail_closed): that model's 503
            return err
        return self._model_verdict(acc.limiter, model, wait)

    def _model_verdict(
        self, limiter: RateLimiter, model: str, wait: float | None
    ) -> GatewayError | None:
        if wait is None:
            self.models.append(model)
            return None
        state = limiter.model_state(model)
        headers = state.headers() if state is not None else {}
        headers["retry-after"] = str(max(1, int(wait + 0.999)))
        limit = limiter.models[model]
        what = " and ".join(
            f"{n} {unit}" for n, unit in ((limit.rpm, "requests"), (limit.tpm, "tokens")) if n
        )
        return RateLimited(
            f"Model {model} is over its rate limit ({what} per minute, shared by every key). "
            f"Retry in {wait:.1f} s.",
            retry_after=wait,
            headers=headers,
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Response headers: the key's ``x-ratelimit-*``, budget warnings and pressure."""
        out: list[tuple[bytes, bytes]] = []
        if self.rate is not None:
            out += [_header(k, v) for k, v in self.rate.headers().items()]
        r = self.reservation
        if r is not None:
            if r.warnings:
                out.append(_header("x-modelmix-budget-warning", "; ".join(r.warnings)))
            if r.pressure > 0.0:
                out.append(_header("x-modelmix-budget-pressure", f"{r.pressure:.3f}"))
        return out

    def header_dict(self) -> dict[str, str]:
        return {k.decode(): v.decode("latin-1") for k, v in self.headers()}


#: What a request gets when no budget and no limit applies: nothing to settle.
_FREE = Admission(None)


class Accounting:
    """Budgets, rate limits and cost estimates for one gateway (built by ``Gateway``)."""

    def __init__(
        self,
        settings: BudgetsConfig,
        keys: KeyStore | None,
        *,
        clock: Callable[[], float] = time.time,
        state: StateConfig | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        #: Redis settings (``state:``): counters shared by replicas on several hosts.
        self.state = state
        self.link: RedisLink | None = None
        self.events: SharedEvents | None = None
        self.budgets = Budgets(settings.specs(), clock=clock)
        self.limiter = RateLimiter(
            settings.model_limits(), default_key_limit=settings.default_key_limit()
        )
        self.estimator = CostEstimator({}, default_completion_tokens=256)
        self.worst_case = WorstCase({}, {}, settings.max_output_tokens_default)
        self._table: SharedTable | None = None
        self._pending: dict[str, Admission] = {}
        self._prices: dict[str, Price | None] = {}
        self._reported: set[tuple[str, str]] = set()
        self._model_tpm = any(m.tpm for m in self.limiter.models.values())
        #: tags with a budget: a key may have only those it is allowed to set counted
        self._budgeted_tags = frozenset(settings.tags)
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(
        self,
        portfolio: Mapping[str, ModelEntry],
        routes: Sequence[RouteConfig],
        ledger_path: Path | None,
        ledger_location: str | Path | None = None,
    ) -> None:
        """Open the counters (shared beside the ledger, unless ``budgets.store: memory`` or
        there is no ledger), seed spend from the ledger, and price routes for estimates."""
        s = self.settings
        if self.state is not None and self.state.redis_url:  # replicas: counters in Redis
            from modelmix.state.events import SharedEvents
            from modelmix.state.redis_counters import use_redis

            self.link = use_redis(self.state, self.budgets, self.limiter)
            self.events = SharedEvents(self.link)  # revocations, cool-downs
        elif ledger_path is not None and s.store == "shared":
            from modelmix.budgets.shared import SharedBucketStore, SharedSpendStore, SharedTable

            self._table = SharedTable(f"{ledger_path}.counters", s.shared_slots)
            self.budgets.store = SharedSpendStore(self._table)
            self.limiter.store = SharedBucketStore(self._table)
        self.estimator = CostEstimator(
            portfolio,
            {r.name: r.all_models() or list(portfolio) for r in routes},
            default_completion_tokens=s.completion_tokens_estimate,
            summed=[r.name for r in routes if strategy_spec(r.strategy).summed_cost],
        )
        self._prices = {d.id: d.price for e in portfolio.values() for d in e.deployments}
        self.worst_case = WorstCase(
            portfolio,
            {r.name: r.all_models() or list(portfolio) for r in routes},
            s.max_output_tokens_default,
        )
        key_budgets = self.keys.active_budgets() if self.keys is not None else []
        source = ledger_location or ledger_path  # a PostgreSQL ledger: its URL
        loader = ledger_spend_loader(source) if ledger_path is not None and source else None
        try:
            self.budgets.initialise(loader, key_budgets)
        except GatewayError:  # Redis down (fail_closed): counters are seeded at first use
            log.warning("shared state unreachable at start-up; budgets seeded when it returns")

    def close(self) -> None:
        """Settle what is still pending at its estimate (a stop normally waits for every
        request), then close the counters; records finished later only get their confidence."""
        for rid in list(self._pending):
            admission = self._pending.pop(rid)
            if admission.reservation is not None:
                admission.reservation.settle(admission.reservation.amount)
        self._closed = True
        if self._table is not None:
            self._table.close()
            self._table = None
        if self.events is not None:
            self.events.close()
            self.events = None
        if self.link is not None:
            self.link.close()
            self.link = None

    # -- the request path ------------------------------------------------------------------

    def key_info(self, key_id: str | None) -> KeyInfo | None:
        if key_id is None or key_id == ADMIN_KEY_ID or self.keys is None:
            return None
        info = self.keys.by_id(key_id)
        if info is None or (self.events is not None and key_id in self.events.revoked):
            raise GatewayError("authentication", "Invalid API key.", code="invalid_api_key")
        return info

    def admit(self, request: ChatRequest, record: RequestRecord, key_id: str | None) -> Admission:
        """Check and reserve for one request (see the module docstring). Raises
        ``GatewayError``: 403 model not allowed, 429 rate limit or budget."""
        plan = self._plan(request, record, key_id)
        if plan is None:
            return _FREE
        limiter = self.limiter
        rate = limiter.acquire(key_id, plan.limit, plan.tokens) if plan.limit is not None else None
        reservation = None
        if plan.specs:
            try:
                reservation = self.budgets.check_and_reserve(plan.ctx, plan.estimate, plan.specs)
            except BudgetExceeded as err:
                self._give_back(err, key_id, plan, rate)
                raise
        return self._admitted(request, record, key_id, plan, rate, reservation)

    async def admit_async(
        self, request: ChatRequest, record: RequestRecord, key_id: str | None
    ) -> Admission:
        """``admit`` with the shared counters' round trips (Redis) awaited on the event loop
        instead of blocking it. Callers use it when ``link`` is set; ``admit`` otherwise (the
        local counters need no await)."""
        plan = self._plan(request, record, key_id)
        if plan is None:
            return _FREE
        limiter = self.limiter
        rate = None
        if plan.limit is not None:
            rate = await limiter.acquire_async(key_id, plan.limit, plan.tokens)
        reservation = None
        if plan.specs:
            budgets = self.budgets
            try:
                reservation = await budgets.check_and_reserve_async(
                    plan.ctx, plan.estimate, plan.specs
                )
            except BudgetExceeded as err:
                self._give_back(err, key_id, plan, rate)
                raise
        return self._admitted(request, record, key_id, plan, rate, reservation)

    def _plan(
        self, request: ChatRequest, record: RequestRecord, key_id: str | None
    ) -> _Plan | None:
        """What ``admit`` checks before touching a counter: the key, its allowed models, the
        spend attribution, the budgets and limits that apply and the estimates (None: none
        applies). Raises 403 ``model_not_allowed``."""
        key = self.key_info(key_id)
        user = request.params.get("user")
        if key is not None:
            record.team = key.team
            tags = request_tags(key.tags, request.metadata, user if isinstance(user, str) else None)
            if self._budgeted_tags:  # issue 14: a key spends only from tags it may set
                tags = scoped_tags(key, tags, self._budgeted_tags, record)
            ctx = BudgetContext(key.id, key.team, tags, key.budgets)
        else:
            tags = request_tags((), request.metadata, user if isinstance(user, str) else None)
            ctx = BudgetContext(key_id, None, tags)
        record.tags = tags  # attributed even when refused below
        if key is not None and not key.allows(request.model):
            allowed = ", ".join(key.allowed_models)
            raise GatewayError(
                "permission",
                f"This key may not use {request.model!r}; it may use: {allowed}.",
                param="model",
                code="model_not_allowed",
            )
        specs = self.budgets.applicable(ctx)
        limiter = self.limiter
        limit = limiter.key_limit(key.rate_limit) if key is not None else None
        if not specs and limit is None and not limiter.models:
            return None

        # exact prompt tokens only when something is counted in tokens or dollars
        counted = bool(specs) or (limit is not None and limit.tpm is not None) or self._model_tpm
        prompt = count_prompt_tokens(request) if counted else 0
        max_tokens = request.params.get("max_tokens")
        cap = max_tokens if isinstance(max_tokens, int) else None
        completion = self.estimator.completion_tokens(request.model, cap)
        estimate, tokens = self.estimator.estimate(request.model, prompt, cap)
        hard = any(spec.kind != "soft" for spec in specs)
        if hard:  # reserve the worst case, not a guess (budgets/worst_case.py)
            worst = self.worst_case.completion_tokens(request.model, cap)
            estimate = self.estimator.cost(request.model, prompt, worst)
        return _Plan(ctx, specs, limit, prompt, completion, estimate, tokens, hard)

    def _give_back(
        self, err: BudgetExceeded, key_id: str | None, plan: _Plan, rate: RateState | None
    ) -> None:
        """A request refused by a budget is not counted by its rate limits."""
        limit, tokens = plan.limit, plan.tokens
        if limit is None or rate is None:
            return
        self.limiter.release(key_id, limit, tokens)
        if rate.limit_requests is not None:
            rate.remaining_requests += 1
        if rate.limit_tokens is not None:
            rate.remaining_tokens = min(rate.limit_tokens, rate.remaining_tokens + tokens)
        err.headers.update(rate.headers())

    def _admitted(
        self,
        request: ChatRequest,
        record: RequestRecord,
        key_id: str | None,
        plan: _Plan,
        rate: RateState | None,
        reservation: Reservation | None,
    ) -> Admission:
        if reservation is not None:
            record.decision["budget"] = {
                "reserved_usd": format(plan.estimate, "f"),
                "pressure": round(reservation.pressure, 3),
                **({"warnings": reservation.warnings} if reservation.warnings else {}),
            }
        if self.link is not None and not self.link.up:  # fail_open: counted here alone
            record.decision["shared_state"] = "local"
            self.link.local_admissions += 1
        admission = Admission(
            self, key_id, plan.limit, reservation, rate, plan.prompt, plan.completion
        )
        if plan.hard and reservation is not None and request.stream:
            prompt_cost = self.estimator.cost(request.model, plan.prompt, 0)
            out_rate = self.estimator.output_rate(request.model)
            admission._watch = StreamWatch(reservation, prompt_cost, out_rate)
        self._pending[record.id] = admission
        return admission

    def on_record(self, record: RequestRecord) -> None:
        """A finished request's record, before it goes to the ledger: set its cost
        confidence (charging an estimate for usage never reported), settle its reservation
        and correct the token buckets."""
        admission = self._pending.pop(record.id, None)
        self._confidence(record, admission)
        if admission is None or self._closed:
            return
        if admission.reservation is not None:
            admission.reservation.settle(record.cost_usd)
        limiter = self.limiter
        if admission.limit is not None and admission.limit.tpm is not None:
            used = record.prompt_tokens + record.completion_tokens
            limiter.adjust(admission.key_id, None, used - admission.tokens)
        for model in admission.models:
            if limiter.models[model].tpm is None:
                continue
            used = sum(
                a.prompt_tokens + a.completion_tokens for a in record.attempts if a.model == model
            )
            limiter.adjust(None, model, used - admission.tokens)
        if record.status == "ok" and record.completion_tokens:
            self.estimator.observe(record.requested_model, record.completion_tokens)

    def abandon(self, record: RequestRecord) -> None:
        """The request is over but its record never finished (a stream nobody read): charge
        the estimate rather than leave the reservation held."""
        admission = self._pending.pop(record.id, None)
        if admission is not None and admission.reservation is not None:
            admission.reservation.settle(admission.reservation.amount)

    def _confidence(self, record: RequestRecord, admission: Admission | None) -> None:
        worst = 0
        for a in record.attempts:
            if a.prompt_tokens or a.completion_tokens:
                if a.cost_usd is None:
                    worst = 2
                else:
                    price = self._prices.get(a.deployment)
                    if a.usage_estimated or (price is not None and price.estimated):
                        worst = max(worst, 1)
                continue
            answered = a.status == "ok" or a.status in _UNFINISHED
            if not answered:
                continue  # failed before any usage: it cost nothing
            # an answer (or part of one) with no usage reported: estimate it if we can
            price = self._prices.get(a.deployment)
            if admission is None or not admission.prompt_tokens or price is None:
                worst = 2
                continue
            a.prompt_tokens = admission.prompt_tokens
            a.completion_tokens = admission.completion_tokens
            a.cost_usd = price.cost(Usage(a.prompt_tokens, a.completion_tokens))
            a.price_source = f"{price.source} (usage estimated)"
            record.prompt_tokens += a.prompt_tokens
            record.completion_tokens += a.completion_tokens
            record.cost_usd += a.cost_usd
            worst = max(worst, 1)
        record.cost_confidence = ("exact", "estimated", "unknown")[worst]

    # -- reporting -------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Every budget's current window (config budgets, then the active keys' budgets)."""
        extra = self.keys.active_budgets() if self.keys is not None else []
        return self.budgets.status(extra)

    def refresh_metrics(self, metrics: Metrics) -> None:
        """Set ``modelmix_budget_remaining_usd`` for every budget (at scrape time, so the
        gauge is current in every worker process), dropping budgets that are gone."""
        if self.link is not None:
            from modelmix.state.metrics import export_state_metrics

            export_state_metrics(metrics, self.link)
        seen: set[tuple[str, str]] = set()
        for row in self.status():
            name = str(row["name"])
            metrics.set_budget_remaining(row["scope"], name, float(row["remaining_usd"]))
            seen.add((row["scope"], name))
        for scope, name in self._reported - seen:
            metrics.remove_budget(scope, name)
        self._reported = seen
