"""The gateway as a library: everything a request needs, started and stopped together.

    async with Gateway(config) as gw:
        result = await gw.chat({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        print(result.response.content, result.record.cost_usd)

The HTTP server wraps exactly this object; there is no global state.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelmix.adaptive.live import LiveStats, uses_live
from modelmix.adaptive.seed import seed_from_ledger
from modelmix.budgets.accounting import Accounting, Admission
from modelmix.budgets.enforcer import Budgets
from modelmix.cache.request_key import HEADER
from modelmix.config import SIMULATED_BASE_URL, Config
from modelmix.engine import Engine, EngineStream, Observer, finish_record
from modelmix.errors import GatewayError
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.postgres import open_writer_ledger
from modelmix.ledger.records import RequestRecord
from modelmix.ledger.sqlite import SqliteLedger
from modelmix.metrics import Metrics
from modelmix.portfolio import ModelEntry, build_portfolio
from modelmix.providers.http import UpstreamClient
from modelmix.routing.registry import strategy_spec
from modelmix.routing.strategy import Router
from modelmix.tokens import count_tokens
from modelmix.tracing import Tracer
from modelmix.types import ChatRequest, ChatResponse
from modelmix.wire.openai_chat.client import parse_chat_request

if TYPE_CHECKING:
    from modelmix.adaptive.queue import QueuePoller
    from modelmix.cache.hooks import ResponseCache
    from modelmix.embeddings.run import EmbeddingResult
    from modelmix.personal.service import Personaliser
    from modelmix.quality.loop import QualityLoop

log = logging.getLogger("modelmix")


@dataclass(slots=True)
class Result:
    """A non-streamed call's answer, its ledger record (routing decision, attempts, cost) and
    its admission (budgets, rate limits)."""

    response: ChatResponse
    record: RequestRecord
    admission: Admission

    @property
    def warnings(self) -> list[str]:
        """Soft budgets this request went past (the HTTP API sends them as
        ``x-modelmix-budget-warning``)."""
        return list(self.admission.warnings)


#: Request ids need to be unique, not secret: 96 bits, from a generator seeded once per process
#: from the OS (no system call per request).
_ids = random.Random(int.from_bytes(os.urandom(16), "big"))
os.register_at_fork(after_in_child=lambda: _ids.seed(int.from_bytes(os.urandom(16), "big")))


def new_request_id() -> str:
    """``mm-`` + 48 bits of milliseconds since the epoch + 48 random bits, in hex. Ids that
    grow with time are appended to the ledger's primary-key B-trees instead of landing at
    random pages: that halves the writer's CPU per row (``benchmarks/ledger_ids.py``)."""
    return f"mm-{int(time.time() * 1000):012x}{_ids.getrandbits(48):012x}"


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        ledger: bool = True,
        background: bool = True,
    ) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.config_hash = config.hash()
        self.ledger: SqliteLedger | None = None
        self.keys: KeyStore | None = None
        if ledger:
            self.keys = KeyStore(config.ledger_location)
            self.ledger = open_writer_ledger(
                config.ledger_location,
                synchronous=config.ledger.synchronous,
                batch_size=config.ledger.batch_size,
                flush_interval=config.ledger.flush_interval,
            )
        self.metrics: Metrics | None = (
            Metrics.for_config(config) if config.metrics.enabled else None
        )
        #: Budgets, rate limits, spend attribution (budgets/accounting.py).
        self.accounting = Accounting(config.budgets, self.keys, state=config.state)
        self.tracer = Tracer()  # off until start()
        self.simulator: Any = None
        self.portfolio: dict[str, ModelEntry] = {}
        self.client: UpstreamClient | None = None
        self._engine: Engine | None = None
        #: The quality loop (policy versions, canary, capture, judge, shadow, probes, alarms):
        #: on with the ledger; ``background=False`` keeps its periodic tasks off (a CLI run).
        self.quality: QualityLoop | None = None
        self.personal: Personaliser | None = None
        #: Pollers of the servers' queue metrics (``queue_metrics:``), or None.
        self.queues: QueuePoller | None = None
        self._background = background
        #: The routing policy version serving requests (stamped on every ledger row).
        self.policy_version: str | None = None
        #: The response cache (``cache:``; None when off).
        self.cache: ResponseCache | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        simulated_url = None
        uses_simulator = any(
            SIMULATED_BASE_URL in (m.base_url, *(d.base_url for d in m.deployments))
            for m in self.config.models
        )
        if uses_simulator:
            from modelmix.simulated import start_simulator

            self.simulator = await start_simulator()
            simulated_url = self.simulator.base_url
            log.info("simulated upstream listening on port %s", self.simulator.port)
        self.portfolio = build_portfolio(self.config, self.env, simulated_url)
        if self.ledger is not None:
            from modelmix.quality.loop import QualityLoop

            self.quality = QualityLoop(
                self.config,
                self.portfolio,
                run=self.run,
                use_router=self.use_router,
                set_observer=self.set_observer,
                metrics=self.metrics,
                env=self.env,
                background=self._background,
            )
            router = self.quality.setup()
            self.policy_version = self.quality.state.live
        else:
            router = Router(self.config.routes, self.portfolio)
        if any(strategy_spec(r.strategy).uses_tokenizer for r in self.config.routes):
            count_tokens("")  # load the tokenizer now, not on the first request
        self.tracer = Tracer(self.config.tracing)  # imports OpenTelemetry only when enabled
        self.client = UpstreamClient(  # bounded answers: issue 14, finding 5
            max_response_bytes=self.config.server.limits.max_upstream_response_bytes
        )
        if self.ledger is not None:
            self.ledger.start()
        self.accounting.start(
            self.portfolio,
            self.config.routes,
            self.config.ledger_local_path if self.ledger is not None else None,
            self.config.ledger_location,
        )
        self._engine = Engine(
            self.portfolio, router, self.client, self.config.engine, self.emit, self._live()
        )
        if any(d.queue_metrics for e in self.portfolio.values() for d in e.deployments):
            from modelmix.adaptive.queue import QueuePoller  # issue 15: servers' own queues

            self.queues = QueuePoller(
                (d for e in self.portfolio.values() for d in e.deployments),
                self._engine.live,
                self.client,
            )
            self.queues.start()
        events = self.accounting.events
        if events is not None:  # replicas share cool-downs (state/events.py)
            self._engine.health.on_rest, events.on_rest = events.rest, self._engine.health.rest
        if self.quality is not None:
            self.quality.start()
            if self.quality.explores:  # routes' exploration posteriors (issue 15, item 4)
                self._engine.posteriors = self.quality.explorer.posteriors
        if self.ledger is not None and self.config.quality.personal.enabled:
            from modelmix.personal.service import Personaliser

            self.personal = Personaliser(self.config.ledger_location, self.config.quality.personal)
            await self.personal.start()
            self._engine.personal = self.personal.offsets
        if self.config.cache.enabled:
            from modelmix.cache.hooks import ResponseCache

            state = self.config.state
            self.cache = ResponseCache.build(
                self.config.cache, state.redis_url, state.prefix, state.timeout, self.emit
            )

    def _live(self) -> LiveStats:
        """Live latency/load estimates: shared by the workers on this ledger (a mapped file
        beside it) when a route or model routes on them, seeded from its recent attempts by
        the first one to start; else this process's own (cheaper: no lock)."""
        half_life = self.config.engine.live_half_life
        if self.ledger is None or not uses_live(self.config):
            return LiveStats(half_life)
        live = LiveStats(half_life, path=f"{self.config.ledger_path}.live")
        if live.fresh:
            seed_from_ledger(live, self.config.ledger_path)
        return live

    async def close(self) -> None:
        if self.queues is not None:
            await self.queues.close()
            self.queues = None
        if self.personal is not None:
            await self.personal.close()
            self.personal = None
        if self.cache is not None:
            await self.cache.close()
            self.cache = None
        if self.quality is not None:
            await self.quality.close()  # first: its background calls need the client
            self.quality = None
        await self.tracer.aclose()
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        if self.ledger is not None:
            self.ledger.close()
        self.accounting.close()
        if self._engine is not None:
            self._engine.live.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Gateway.start() has not been called")
        return self._engine

    @property
    def router(self) -> Router | None:
        """The router serving requests (the engine's: its one slot), None before start."""
        return self._engine.router if self._engine is not None else None

    def use_router(self, router: Router, policy_version: str | None) -> None:
        """Serve ``router`` (policy ``policy_version``, stamped on every ledger row) from
        the next request on."""
        self.engine.router = router
        self.policy_version = policy_version

    def set_observer(self, observer: Observer | None) -> None:
        """What sees each finished answer (the quality loop's capture, judge, shadow)."""
        self.engine.observer = observer

    @property
    def budgets(self) -> Budgets:
        """Every budget in force (config and keys), with its spend store."""
        return self.accounting.budgets

    def emit(self, record: RequestRecord) -> None:
        """Where every finished record goes (the engine's recorder): budgets, ledger,
        metrics, traces."""
        self.accounting.on_record(record)  # settle budgets, cost confidence
        if self.ledger is not None:
            self.ledger.record(record)
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.tracer.enabled:
            self.tracer.export(record)

    def new_record(
        self,
        api: str,
        request: ChatRequest | None,
        *,
        request_id: str | None = None,
        key_id: str | None = None,
        started_at: float | None = None,
    ) -> RequestRecord:
        return RequestRecord(
            id=request_id or new_request_id(),
            started_at=started_at if started_at is not None else time.time(),
            api=api,
            requested_model=request.model if request else "",
            stream=request.stream if request else False,
            key_id=key_id,
            config_hash=self.config_hash,
            metadata=dict(request.metadata) if request else {},
            policy_version=self.policy_version,
        )

    def admit(self, request: ChatRequest, record: RequestRecord, key_id: str | None) -> Admission:
        """Allowed models, spend attribution, rate limits and budget reservation for one
        request (``Accounting.admit``); raises ``GatewayError`` (403 / 429)."""
        return self.accounting.admit(request, record, key_id)

    async def admit_async(
        self, request: ChatRequest, record: RequestRecord, key_id: str | None
    ) -> Admission:
        """``admit`` with shared counters (Redis) awaited on the event loop; no await at all
        on the local counters."""
        accounting = self.accounting
        if accounting.link is None:
            return accounting.admit(request, record, key_id)
        return await accounting.admit_async(request, record, key_id)

    def refuse(
        self,
        api: str,
        request: ChatRequest | None,
        err: GatewayError,
        *,
        request_id: str | None = None,
        started_at: float | None = None,
    ) -> RequestRecord:
        """Record a request that ended before ``run`` could take it (bad input, bad key)."""
        record = self.new_record(api, request, request_id=request_id, started_at=started_at)
        self._refused(record, err)
        return record

    def _refused(self, record: RequestRecord, err: GatewayError) -> None:
        finish_record(record, err)
        self.emit(record)
        err.record = record

    async def run(
        self,
        request: ChatRequest,
        *,
        api: str,
        key_id: str | None = None,
        request_id: str | None = None,
        started_at: float | None = None,
        parent: str | None = None,
        cache: str | None = None,
    ) -> Result | EngineStream:
        """The one request lifecycle (HTTP, library, evals, probes, judge, shadow): a new
        ledger record, admission (a refusal is recorded), the engine, and the reservation
        abandoned if the record never finished. ``request.stream`` picks the answer: an
        ``EngineStream`` (its reader abandons it: ``Accounting.abandon``) or a ``Result``.

        Raises ``GatewayError`` carrying the emitted ``record`` and, once admitted, the
        admission's ``headers``. ``api`` goes in the ledger row; ``key_id`` is the virtual
        key whose budgets, limits, allowed models, team and tags apply; ``parent`` is the
        request a background call (judge, shadow) was made for. ``cache``: the client's
        ``x-modelmix-cache`` header (``""`` when absent) for a request the response cache may
        answer; None (library, evals, quality-loop calls): never from the cache.
        """
        record = self.new_record(
            api, request, request_id=request_id, key_id=key_id, started_at=started_at
        )
        if parent is not None:
            record.metadata["modelmix_parent"] = parent[:64]
        accounting = self.accounting
        try:
            if accounting.link is None:  # local counters: no await on the request path
                admission = accounting.admit(request, record, key_id)
            else:
                admission = await accounting.admit_async(request, record, key_id)
        except GatewayError as err:
            self._refused(record, err)
            raise
        look = None  # response cache (cache/hooks.py): a look before the engine, a store after
        if self.cache is not None and cache is not None:
            look = await self.cache.before(request, record, key_id, {HEADER: cache})
        stream: EngineStream | None = None
        try:
            if request.stream:
                if look is not None and look.hit is not None:
                    stream = look.replay(record)
                else:
                    stream = await self.engine.stream(request, record, admission)
                    stream = stream if look is None else look.tee(stream)
                stream.admission = admission
                return stream
            if look is not None and look.hit is not None:
                return Result(look.hit, record, admission)
            response = await self.engine.complete(request, record, admission)
            if look is not None:
                look.store(response, record)
        except GatewayError as err:
            err.record = record  # emitted by the engine
            err.admission = admission
            raise
        finally:
            if stream is None:
                self.accounting.abandon(record)
        return Result(response, record, admission)

    async def chat(
        self, request: ChatRequest | dict[str, Any], *, key_id: str | None = None
    ) -> Result:
        """Run one non-streamed OpenAI-style chat request in-process.

        Raises ``GatewayError`` with the same kinds and messages the HTTP API returns,
        budgets and rate limits included (``key_id``: the virtual key whose budgets, limits,
        allowed models, team and tags apply).
        """
        if isinstance(request, dict):
            request = parse_chat_request(request)
        request.stream = False
        result = await self.run(request, api="library", key_id=key_id)
        assert isinstance(result, Result)
        return result

    async def chat_stream(
        self, request: ChatRequest | dict[str, Any], *, key_id: str | None = None
    ) -> EngineStream:
        """Start a streamed request in-process; iterate the result for ``StreamDelta``s."""
        if isinstance(request, dict):
            request = parse_chat_request(request)
        request.stream = True
        stream = await self.run(request, api="library", key_id=key_id)
        assert isinstance(stream, EngineStream)
        return stream

    # issue 12: embeddings, the same lifecycle's sibling (modelmix/embeddings/run.py)
    async def embed(self, request: dict[str, Any], *, key_id: str | None = None) -> EmbeddingResult:
        """Embed an OpenAI-style ``/v1/embeddings`` body in-process (``encoding_format`` is
        the HTTP API's business: the result holds floats)."""
        from modelmix.embeddings.run import run_embeddings
        from modelmix.wire.openai_chat.embeddings import parse_embedding_request

        return await run_embeddings(self, parse_embedding_request(request), key_id=key_id)
