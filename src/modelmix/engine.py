"""The engine: the one place that calls upstreams.

For each client request it asks the routing strategy which model to try, calls that model's
deployments (load-balanced, skipping ones cooling down after repeated failures) with timeouts and
retries honouring Retry-After, reports each outcome back to the strategy, and records every
attempt in the request's ledger record.

Streams fail over only before the first delta reaches the client; after that a failure ends the
client's stream with an explicit error (see ``EngineStream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, TypeVar

from modelmix.adaptive.live import LiveStats
from modelmix.adaptive.pick import pick_deployment
from modelmix.config import EngineConfig
from modelmix.errors import GatewayError, UnsupportedParameter, UpstreamError
from modelmix.estimated_usage import estimate_usage
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.portfolio import ModelEntry
from modelmix.providers.base import Deployment, ProviderAdapter
from modelmix.providers.http import Timeouts, UpstreamClient, UpstreamStream
from modelmix.providers.registry import get_adapter
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome, Router
from modelmix.types import ChatRequest, ChatResponse, StreamDelta, Usage
from modelmix.wire.extensions import adapter_for, notes

if TYPE_CHECKING:
    from modelmix.adaptive.explore import Posteriors
    from modelmix.budgets.accounting import Admission
    from modelmix.personal.offsets import Offsets

T = TypeVar("T")
Recorder = Callable[[RequestRecord], None]


class Observer(Protocol):
    """Sees each finished answer after its record is emitted (the quality loop); must not
    block or raise."""

    def answered(
        self, request: ChatRequest, response: ChatResponse, record: RequestRecord
    ) -> None: ...

    def streamed(
        self, request: ChatRequest, delivered: list[list[StreamDelta]], record: RequestRecord
    ) -> None: ...


#: Why a model was passed over without a call (``decision["skipped"]``).
COOLING_DOWN = "cooling down"
#: Marks an attempt's ``price_source`` when its tokens were estimated, not reported.
TOKENS_ESTIMATED = "tokens estimated: the upstream reported no usage"
#: Errors caused by the request, not the deployment: they never count towards a cool-down (a
#: client sending bad requests must not take a healthy model out of service).
_CLIENT_FAULTS = frozenset({"invalid_request", "content_filter"})


class CallGuard(Protocol):
    """What budgets and rate limits tell the engine about one request (budgets/accounting.py:
    ``Admission``): the routing pressure, and whether a model's own rate limit lets a call go
    (a refusal is treated as that model's answer: the strategy falls back or the client gets
    the 429)."""

    @property
    def pressure(self) -> float: ...

    def admit_model(self, model: str) -> GatewayError | None: ...

    @property
    def shared_models(self) -> bool:
        """Per-model limits in Redis: ``admit_model_async`` instead (awaited on the loop)."""
        ...

    async def admit_model_async(self, model: str) -> GatewayError | None: ...

    def stream_watch(self) -> Callable[[list[StreamDelta]], GatewayError | None] | None:
        """Sees each delivered batch of a stream; an error it returns ends the stream
        (a hard budget passed: budgets/worst_case.py). None: nothing to watch."""
        ...


class Health:
    """Consecutive failures per deployment; a deployment that keeps failing rests a while."""

    def __init__(self, failures: int, seconds: float) -> None:
        self.threshold = failures
        self.seconds = seconds
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        #: Told when a deployment starts resting (replicas share cool-downs: state/events.py).
        self.on_rest: Callable[[str, float], None] | None = None

    def available(self, deployment_id: str, now: float) -> bool:
        until = self._until.get(deployment_id)
        return until is None or until <= now

    def success(self, deployment_id: str) -> None:
        if deployment_id in self._failures:
            del self._failures[deployment_id]
            self._until.pop(deployment_id, None)

    def failure(self, deployment_id: str, now: float) -> None:
        count = self._failures.get(deployment_id, 0) + 1
        self._failures[deployment_id] = count
        if count >= self.threshold:
            self._until[deployment_id] = now + self.seconds
            if self.on_rest is not None:
                self.on_rest(deployment_id, self.seconds)

    def rest(self, deployment_id: str, seconds: float) -> None:
        """Rest a deployment another replica found failing."""
        self._until[deployment_id] = time.time() + seconds


def to_gateway_error(err: UpstreamError | GatewayError, model: str) -> GatewayError:
    """The client-facing error for the last failure of a request."""
    if isinstance(err, GatewayError):
        return err
    msg = f"Upstream error from {model}: {err.message}"
    match err.kind:
        case "rate_limit":
            return GatewayError(
                "rate_limit", msg, code="upstream_rate_limited", retry_after=err.retry_after
            )
        case "overloaded":
            return GatewayError("overloaded", msg, code="upstream_overloaded")
        case "timeout":
            return GatewayError("timeout", msg, code="upstream_timeout")
        case "invalid_request":
            return GatewayError("invalid_request", msg, code="upstream_rejected_request")
        case "content_filter":
            return GatewayError("invalid_request", msg, code="content_filter")
        case "auth":
            return GatewayError(
                "upstream",
                f"Upstream authentication failed for {model} (check its API key): {err.message}",
                code="upstream_auth_failed",
            )
        case _:
            return GatewayError("upstream", msg, code="upstream_error")


def _apply_usage(attempt: AttemptRecord, usage: Usage, deployment: Deployment) -> None:
    attempt.prompt_tokens = usage.prompt_tokens
    attempt.completion_tokens = usage.completion_tokens
    attempt.cached_tokens = usage.cached_tokens
    attempt.cache_write_tokens = usage.cache_write_tokens
    attempt.reasoning_tokens = usage.reasoning_tokens
    if deployment.price is not None:
        attempt.cost_usd = deployment.price.cost(usage)
        attempt.price_source = deployment.price.source
    else:
        attempt.price_source = "unknown"


def finish_record(record: RequestRecord, error: GatewayError | None = None) -> None:
    """Totals over attempts, status and latency; call once when the request ends."""
    now = time.time()
    record.latency_ms = (now - record.started_at) * 1000.0
    cost = Decimal(0)
    for a in record.attempts:
        if a.cost_usd is not None:
            cost += a.cost_usd
        record.prompt_tokens += a.prompt_tokens
        record.completion_tokens += a.completion_tokens
        record.cached_tokens += a.cached_tokens
        record.reasoning_tokens += a.reasoning_tokens
    record.cost_usd = cost
    if record.ttft_ms is None and error is None:
        record.ttft_ms = record.latency_ms
    if error is not None and record.status == "ok":
        record.status = "error"
        record.http_status = error.status
        record.error = error.message


class Engine:
    def __init__(
        self,
        portfolio: Mapping[str, ModelEntry],
        router: Router,
        client: UpstreamClient,
        settings: EngineConfig,
        recorder: Recorder,
        live: LiveStats | None = None,
    ) -> None:
        self.portfolio = portfolio
        #: Live latency and load per deployment (adaptive/live.py), read by routes' plans.
        self.live = live if live is not None else LiveStats(settings.live_half_life)
        self.router = router
        self.client = client
        self.settings = settings
        self.recorder = recorder
        t = settings.timeouts
        self.timeouts = Timeouts(connect=t.connect, first_token=t.first_token, total=t.total)
        self.health = Health(settings.cooldown.failures, settings.cooldown.seconds)
        self._rng = random.Random()
        #: None unless a quality feature (capture, online judge, shadow) needs the answers.
        self.observer: Observer | None = None
        #: Per-subject offsets of the learned router (personal/): None unless configured.
        self.personal: Offsets | None = None
        #: Acceptance posteriors of routes' exploration candidates (adaptive/explore.py).
        self.posteriors: Posteriors | None = None

    # -- public API -----------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, record: RequestRecord, guard: CallGuard | None = None
    ) -> ChatResponse:
        """Run a non-streamed request to its end; the record is finished and emitted."""
        try:
            outcome, response = await self._run(request, record, self._call_complete, guard)
        except GatewayError as exc:
            finish_record(record, exc)
            self.recorder(record)
            raise
        record.final_model = outcome.model
        finish_record(record)
        self.recorder(record)
        if self.observer is not None:
            self.observer.answered(request, response, record)
        return response

    async def stream(
        self, request: ChatRequest, record: RequestRecord, guard: CallGuard | None = None
    ) -> EngineStream:
        """Open a stream: returns once an upstream has produced its first delta.

        Raises ``GatewayError`` (record emitted) when every candidate failed before that.
        """
        try:
            outcome, (upstream, first) = await self._run(request, record, self._call_stream, guard)
        except GatewayError as exc:
            finish_record(record, exc)
            self.recorder(record)
            raise
        record.final_model = outcome.model
        stream = EngineStream(self, record, outcome.model, upstream, first, request)
        stream.watch = guard.stream_watch() if guard is not None else None  # issue 14
        return stream

    # -- the loop shared by both ---------------------------------------------------------

    async def _run(
        self,
        request: ChatRequest,
        record: RequestRecord,
        call: Callable[[ProviderAdapter, Deployment, ChatRequest, AttemptRecord], Awaitable[T]],
        guard: CallGuard | None = None,
    ) -> tuple[Outcome, T]:
        strategy, route = self.router.resolve(request.model)
        record.route = route
        started = time.perf_counter()
        personal = self.personal
        found = personal.lookup(record.key_id, record.team, record.tags) if personal else None
        pressure = guard.pressure if guard is not None else 0.0
        needs = needs_of(request, pressure, self.live, found, self.posteriors)
        plan = strategy.plan(request, needs, record.decision)
        attempt = next(plan)  # a strategy raises GatewayError when nothing can serve
        # how long routing took to name the first model (the ledger keeps it per request)
        record.decision["decision_us"] = round((time.perf_counter() - started) * 1e6, 1)
        results: list[tuple[Outcome, T]] = []
        while True:
            refusal = None
            if guard is not None:
                if guard.shared_models:
                    refusal = await guard.admit_model_async(attempt.model)
                else:
                    refusal = guard.admit_model(attempt.model)
            if refusal is not None:  # the model's own rate limit: not called
                record.decision.setdefault("rate_limited", []).append(attempt.model)
                outcome, result = Outcome(attempt.model, error=refusal), None
            else:
                outcome, result = await self._call_model(
                    attempt.model, attempt.request or request, record, call
                )
            if result is not None:
                results.append((outcome, result))
            try:
                attempt = plan.send(outcome)
            except StopIteration as stop:
                final: Outcome = stop.value or outcome
                break
        for done, result in results:
            if done is final:
                return done, result
        assert final.error is not None
        raise to_gateway_error(final.error, final.model)

    def _pick(self, entry: ModelEntry, tried: set[str], now: float) -> Deployment | None:
        fresh = [
            d for d in entry.deployments if d.id not in tried and self.health.available(d.id, now)
        ]
        pool = fresh or [d for d in entry.deployments if self.health.available(d.id, now)]
        if not pool:
            return None
        if len(pool) == 1:
            return pool[0]
        return pick_deployment(pool, self.live, self._rng)

    async def _call_model(
        self,
        model: str,
        request: ChatRequest,
        record: RequestRecord,
        call: Callable[[ProviderAdapter, Deployment, ChatRequest, AttemptRecord], Awaitable[T]],
    ) -> tuple[Outcome, T | None]:
        """Call one model, retrying on its deployments; never raises UpstreamError."""
        entry = self.portfolio[model]
        entry_adapter = get_adapter(entry.provider)
        adapter = adapter_for(entry_adapter, request)  # issue 12: fields beyond the canonical
        settings = self.settings
        tried: set[str] = set()
        last: UpstreamError | None = None
        for i in range(settings.retries + 1):
            now = time.time()
            dep = self._pick(entry, tried, now)
            if dep is None:
                if last is None:  # not called at all: say so in the decision
                    skip = {
                        "model": model,
                        "reason": COOLING_DOWN,
                        "at_attempt": len(record.attempts),
                    }
                    record.decision.setdefault("skipped", []).append(skip)
                    last = UpstreamError(
                        "overloaded",
                        f"every deployment of {model} is cooling down after repeated failures",
                    )
                break
            tried.add(dep.id)
            attempt = AttemptRecord(
                request_id=record.id,
                seq=len(record.attempts),
                model=model,
                deployment=dep.id,
                provider=dep.provider,
                upstream_model=dep.upstream_model,
                started_at=now,
            )
            record.attempts.append(attempt)
            if adapter is not entry_adapter and (left_out := notes(request, dep)):  # issue 12
                record.decision.setdefault("left_out", {})[model] = left_out
            self.live.begin(dep.id)
            try:
                try:
                    result = await call(adapter, dep, request, attempt)
                except UnsupportedParameter as exc:  # screened before; a safety net
                    raise UpstreamError(
                        "invalid_request", f"{dep.provider} cannot honour {exc}"
                    ) from None
            except UpstreamError as err:
                done = time.time()
                attempt.latency_ms = (done - now) * 1000.0
                attempt.status = "error"
                attempt.http_status = err.status
                attempt.error_kind = err.kind
                attempt.error = err.message[:500]
                if err.kind in _CLIENT_FAULTS:
                    self.live.release(dep.id)
                else:
                    self.live.end(dep.id, ok=False)
                if err.kind not in _CLIENT_FAULTS:
                    self.health.failure(dep.id, done)
                last = err
                if not err.retryable and err.kind != "auth":
                    break
                if err.retry_after is not None and err.retry_after > settings.max_retry_after:
                    break
                if i == settings.retries:
                    break
                others = any(
                    d.id not in tried and self.health.available(d.id, done)
                    for d in entry.deployments
                )
                if err.kind == "auth" and not others:
                    break
                if not others:
                    backoff = min(settings.backoff_base * (2**i), settings.backoff_max)
                    delay = max(err.retry_after or 0.0, backoff * (0.5 + self._rng.random() / 2))
                    await asyncio.sleep(delay)
                    tried.clear()
                continue
            except BaseException:
                self.live.release(dep.id)  # cancelled: no estimate, no longer in flight
                raise
            self.health.success(dep.id)
            if isinstance(result, ChatResponse):
                self.live.end(
                    dep.id,
                    ok=True,
                    ttft_ms=attempt.ttft_ms,
                    tokens=attempt.completion_tokens,
                    latency_ms=attempt.latency_ms,
                )
            elif attempt.ttft_ms is not None:  # a stream: in flight until it ends
                self.live.first_token(dep.id, attempt.ttft_ms)
            return Outcome(
                model, response=result if isinstance(result, ChatResponse) else None
            ), result
        assert last is not None
        return Outcome(model, error=last), None

    async def _call_complete(
        self,
        adapter: ProviderAdapter,
        dep: Deployment,
        request: ChatRequest,
        attempt: AttemptRecord,
    ) -> ChatResponse:
        response = await self.client.complete(adapter, dep, request, self.timeouts)
        attempt.latency_ms = (time.time() - attempt.started_at) * 1000.0
        attempt.ttft_ms = attempt.latency_ms
        attempt.http_status = 200
        _apply_usage(attempt, response.usage, dep)
        return response

    async def _call_stream(
        self,
        adapter: ProviderAdapter,
        dep: Deployment,
        request: ChatRequest,
        attempt: AttemptRecord,
    ) -> tuple[UpstreamStream, StreamDelta]:
        upstream = await self.client.stream(adapter, dep, request, self.timeouts)
        try:
            first = await upstream.__anext__()
        except StopAsyncIteration:
            await upstream.aclose()
            raise UpstreamError("bad_response", "stream ended before any content") from None
        except BaseException:
            await upstream.aclose()
            raise
        attempt.ttft_ms = (time.time() - attempt.started_at) * 1000.0
        attempt.http_status = 200
        return upstream, first


class EngineStream:
    """A stream that has started: iterate to get the deltas (the first one included).

    A failure after the first delta raises ``GatewayError`` from the iteration (the attempt is
    recorded as ``cut``); the server turns it into an explicit error event, never a silently
    truncated answer. The ledger record is emitted when the iteration ends, however it ends.
    """

    def __init__(
        self,
        engine: Engine,
        record: RequestRecord,
        model: str,
        upstream: UpstreamStream,
        first: StreamDelta,
        request: ChatRequest,
    ) -> None:
        self.engine = engine
        self.record = record
        self.model = model
        self.upstream = upstream
        self.first = first
        self.request = request
        self.usage: Usage | None = first.usage
        #: The admission it runs under (set by ``Gateway.run``: its headers go with the answer).
        self.admission: Admission | None = None
        record.ttft_ms = (time.time() - record.started_at) * 1000.0
        #: Sees each delivered batch; an error it returns cuts the stream (a hard budget).
        self.watch: Callable[[list[StreamDelta]], GatewayError | None] | None = None
        #: Why the stream was ended from outside (``abort``: the shutdown deadline).
        self.stopped: GatewayError | None = None

    def abort(self, err: GatewayError) -> None:
        """End the stream from outside: the pending upstream read fails and the iteration
        raises ``err`` (the attempt is recorded as cut)."""
        self.stopped = err
        self.upstream.abort()

    @property
    def at_end(self) -> bool:
        """The upstream's answer is complete and every delta has been handed out."""
        return self.upstream.exhausted

    def __aiter__(self) -> AsyncGenerator[StreamDelta, None]:
        return self.deltas()

    async def deltas(self) -> AsyncGenerator[StreamDelta, None]:
        """The deltas; close the generator (``aclose``) if you stop early."""
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for delta in batch:
                    yield delta

    async def batches(self) -> AsyncGenerator[list[StreamDelta], None]:
        """The deltas in batches, each what one network read brought (a server sends a batch
        in one write); close the generator (``aclose``) if you stop early."""
        attempt = self.record.attempts[-1]
        deployment = next(
            d for d in self.engine.portfolio[self.model].deployments if d.id == attempt.deployment
        )
        upstream = self.upstream
        error: GatewayError | None = None
        finished = False
        delivered: list[list[StreamDelta]] = []  # for a usage estimate if none comes
        try:
            batch = [self.first, *upstream.take_buffered()]
            while True:
                for delta in batch:
                    if delta.usage is not None:
                        self.usage = delta.usage
                yield batch
                delivered.append(batch)  # the consumer came back for more: it took this one
                if self.watch is not None and (stop := self.watch(batch)) is not None:
                    attempt.status = "cut"
                    attempt.error_kind = "budget"
                    attempt.error = stop.message[:500]
                    error = stop
                    raise stop
                try:
                    batch = [await upstream.__anext__(), *upstream.take_buffered()]
                except StopAsyncIteration:
                    break
            finished = True
        except UpstreamError as err:
            attempt.status = "cut"
            attempt.error_kind = err.kind
            attempt.error = err.message[:500]
            error = self.stopped or GatewayError(
                "upstream",
                f"The stream from {self.model} failed after it had started: {err.message}",
                code="stream_interrupted",
            )
            raise error from None
        finally:
            await self.upstream.aclose()
            attempt.latency_ms = (time.time() - attempt.started_at) * 1000.0
            if self.usage is not None:
                _apply_usage(attempt, self.usage, deployment)
            elif delivered:  # text reached the client but no usage came: estimate, say so
                _apply_usage(attempt, estimate_usage(self.request, delivered), deployment)
                attempt.price_source = f"{attempt.price_source} ({TOKENS_ESTIMATED})"
                attempt.usage_estimated = True
            if not finished and error is None:
                attempt.status = "client_closed"
                self.record.status = "client_closed"
                self.record.http_status = 499
            self.engine.live.end(
                deployment.id,
                ok=error is None,
                ttft_ms=attempt.ttft_ms,
                tokens=attempt.completion_tokens,
                latency_ms=attempt.latency_ms,
                ttft_seen=True,
            )
            finish_record(self.record, error)
            self.engine.recorder(self.record)
            observer = self.engine.observer
            if observer is not None and finished:
                observer.streamed(self.request, delivered, self.record)
