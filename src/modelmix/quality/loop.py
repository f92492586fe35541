"""The quality loop inside a gateway: policy versions and canaries, the engine's observer, and
the background tasks (policy watcher, canary guardrails, golden-set probes, alarms).

It is built from narrow parts, never from the gateway: the config, the portfolio, the
gateway's request lifecycle (``run``: every judge, shadow and probe call goes through it), and
the gateway's router and observer slots (``use_router``, ``set_observer``). ``Gateway.start``
calls ``setup`` (before serving: records the config file's policy version, picks what serves,
resolves ``profiles_from: eval:<run>``; returns the router) and ``start`` (sets the observer
when capture, judge or shadow is on, and starts the background tasks that are configured);
``Gateway.close`` calls ``close``.

The loop's clock and sleep are injectable, and every periodic job is a public coroutine
(``check_policy``, ``check_canary``, ``run_probes``, ``check_alarms``) that tests call
directly instead of waiting for a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from modelmix.config import Config, RouteConfig
from modelmix.evals.store import EvalStore
from modelmix.quality.background import BackgroundPool
from modelmix.quality.canary import Verdict, decide, read_arms
from modelmix.quality.explore import Explorer
from modelmix.quality.online import OnlineQuality, shadow_run_id
from modelmix.quality.policy import (
    build_router,
    routes_document,
    validate_routes,
    with_eval_profiles,
)
from modelmix.quality.policy_store import PolicyState, PolicyStore
from modelmix.quality.shared_policy import SharedPolicy
from modelmix.quality.store import QualityStore
from modelmix.quality.writer import BatchWriter
from modelmix.routing.strategy import Router

if TYPE_CHECKING:
    from modelmix.engine import Observer
    from modelmix.evals.calls import Run
    from modelmix.metrics import Metrics
    from modelmix.portfolio import ModelEntry
    from modelmix.quality.alarms import Monitor
    from modelmix.quality.probes import Probes

log = logging.getLogger("modelmix.quality")
T = TypeVar("T")


#: The gateway's router slot: serve this router (and its policy version) from now on.
UseRouter = Callable[[Router, "str | None"], None]
#: The gateway's observer slot.
SetObserver = Callable[["Observer | None"], None]


class QualityLoop:
    def __init__(
        self,
        config: Config,
        portfolio: Mapping[str, ModelEntry],
        *,
        run: Run,
        use_router: UseRouter,
        set_observer: SetObserver,
        metrics: Metrics | None = None,
        env: Mapping[str, str] | None = None,
        background: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.gateway_config = config
        self.portfolio = portfolio
        self.run = run
        self.use_router = use_router
        self.set_observer = set_observer
        self.metrics = metrics
        self.env = env
        self.config = config.quality
        self.background = background
        self.clock = clock
        self.sleep = sleep
        path = config.ledger_location
        self.policies = PolicyStore(path, clock=clock)
        #: The policy published over Redis (replicas with a ledger each; shared_policy.py).
        self.shared = SharedPolicy.of(config.state, config.ledger.url is None)
        self.store = QualityStore(path)
        self.evals = EvalStore(path)
        self.writer = BatchWriter(path)
        self.pool = BackgroundPool(self.config.max_background)
        # the shadows are the live policy's: set in start() and whenever the policy changes
        self.online = OnlineQuality(run, self.config, {}, self.writer, self.pool)
        self.state = PolicyState()
        self._stable_routes: list[RouteConfig] = list(config.routes)
        self.monitor: Monitor | None = None
        self.probes: Probes | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._db_lock = asyncio.Lock()
        self.last_verdict: Verdict | None = None
        #: Exploration posteriors (the engine reads ``explorer.posteriors``) and promotions.
        self.explorer = Explorer(path, self.policies)

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking store call in a worker thread, one at a time (the stores'
        connections are shared with the worker threads)."""
        async with self._db_lock:
            return await asyncio.to_thread(fn, *args)

    # -- policy ------------------------------------------------------------------------------

    def setup(self) -> Router:
        """Record the config file's routes as a version; the router for what serves now."""
        source = "config file"
        before = self.policies.state().file_version
        self.state = self.policies.sync_file(routes_document(self.gateway_config.routes), source)
        shared = self.shared
        if shared is not None:
            if before is not None and before != self.state.file_version:
                shared.publish(self.policies)  # an edited file wins, for every replica
            elif shared.adopt_into(self.policies):
                self.state = self.policies.state()
        return self.build_router(self.state)

    def _routes_of(self, version: str) -> list[RouteConfig]:
        document = self.policies.version(version).document
        return validate_routes(self.gateway_config, document["routes"], f"policy {version}")

    def _with_profiles(self, routes: Sequence[RouteConfig]) -> list[RouteConfig]:
        """Routes with their eval profiles. A gateway that serves fails on a route whose eval
        run is missing; one started for a CLI run (no background tasks: ``modelmix eval run``
        is how that run gets made) leaves the route out and says so."""
        if self.background:
            return with_eval_profiles(routes, self.evals)
        out: list[RouteConfig] = []
        for route in routes:
            try:
                out += with_eval_profiles([route], self.evals)
            except ValueError as exc:
                log.warning("route %s left out: %s", route.name, exc)
        return out

    def build_router(self, state: PolicyState) -> Router:
        portfolio = self.portfolio
        assert state.live is not None
        stable = self._with_profiles(self._routes_of(state.live))
        self._stable_routes = stable
        if state.canary is None:
            return build_router(portfolio, stable, state.live)
        candidate = self._with_profiles(self._routes_of(state.canary))
        return build_router(
            portfolio,
            stable,
            state.live,
            candidate,
            state.canary,
            share=state.canary_share or 0.0,
            sticky=state.canary_sticky or "session",
        )

    def apply(self, state: PolicyState) -> None:
        """Serve ``state`` from now on (the engine reads its router per request)."""
        self.use_router(self.build_router(state), state.live)
        self._use_shadows()
        before = self.state
        self.state = state
        log.info(
            "routing policy now %s%s (was %s%s)",
            state.live,
            f" + canary {state.canary} at {state.canary_share:.0%}" if state.canary else "",
            before.live,
            f" + canary {before.canary}" if before.canary else "",
        )

    async def check_policy(self) -> bool:
        """Pick up a change made elsewhere (``modelmix policy``, another replica over Redis);
        True if the router changed."""
        if self.shared is not None:
            try:
                await self._db(self.shared.adopt_into, self.policies)
            except Exception:
                log.exception("cannot adopt the shared routing policy")
        state = await self._db(self.policies.state)
        if state.key == self.state.key:
            return False
        try:
            self.apply(state)
        except Exception:
            log.exception("cannot serve policy %s; keeping %s", state.live, self.state.live)
            return False
        return True

    # -- canary ------------------------------------------------------------------------------

    async def check_canary(self) -> Verdict | None:
        """Look at the running canary's guardrails when its arm has ``min_samples`` more
        requests than at the last look (looks are spaced by data, not by time, so the looks
        budget is a sample-size budget); acts on a verdict."""
        state = self.state
        if state.canary is None or state.canary_started_at is None:
            return None
        stable, candidate = await self._db(
            read_arms, self.store, state.canary, state.canary_started_at
        )
        settings = self.config.canary
        looks = int(state.canary_settings.get("looks", 0))
        looked_at = int(state.canary_settings.get("looked_at", 0))
        due = (
            candidate.requests >= looked_at + settings.min_samples
            and stable.requests >= settings.min_samples
        )
        if not due:
            self.last_verdict = decide(stable, candidate, settings, max(looks, 1))
            self.last_verdict.action = "continue"
            return self.last_verdict
        looks = await self._db(self.policies.count_look, state.canary, candidate.requests)
        self.state.canary_settings = {
            **state.canary_settings,
            "looks": looks,
            "looked_at": candidate.requests,
        }
        verdict = decide(stable, candidate, settings, looks)
        self.last_verdict = verdict
        if verdict.action == "continue":
            return verdict
        ended = await self._db(
            self.policies.end_canary, state.canary, verdict.action, verdict.as_dict()
        )
        if ended and self.shared is not None:
            await self._db(self.shared.publish, self.policies)
        if ended:
            log.warning(
                "canary %s: %s (%s)", state.canary, verdict.action, "; ".join(verdict.reasons)
            )
            if self.monitor is not None:
                await self.monitor.notify(
                    {
                        "kind": f"canary_{verdict.action}",
                        "subject": f"policy:{state.canary}",
                        "detail": verdict.as_dict(),
                    }
                )
        await self.check_policy()
        return verdict

    # -- exploration (issue 15, item 4) -----------------------------------------------------

    @property
    def explores(self) -> bool:
        """Some route of the config or of the live policy has an ``explore:`` section."""
        routes = [*self.gateway_config.routes, *self._stable_routes]
        return any(r.explore is not None for r in routes)

    async def check_exploration(self) -> str | None:
        """Refresh the candidates' posteriors from the ledger; propose a canary of a candidate
        that beats its route's default (quality/explore.py). Returns the canary's version."""
        if not self.explores:
            return None
        await self._db(self.explorer.refresh, self.clock())
        vid = await self._db(self.explorer.propose, self._routes_of)
        if vid is not None:
            log.warning("exploration proposes canary %s: %s", vid, self.explorer.last_proposal)
            await self.check_policy()
        return vid

    # -- lifecycle ---------------------------------------------------------------------------

    def _use_shadows(self) -> None:
        """The live policy's shadows (a promoted or rolled-back policy brings its own)."""
        shadows = {r.name: r.shadow for r in self._stable_routes if r.shadow is not None}
        for route, shadow in shadows.items():
            if route not in self.online.shadows or self.online.shadows[route] != shadow:
                self.evals.open_run(
                    shadow_run_id(route),
                    kind="shadow",
                    dataset=None,
                    dataset_hash=None,
                    models=[shadow.model],
                    settings={"route": route},
                )
        self.online.shadows = shadows
        self.set_observer(self.online if self.online.active else None)

    def start(self) -> None:
        self.writer.start()
        self._use_shadows()
        if self.config.alarms.enabled or self.config.probes.enabled:
            from modelmix.quality.alarms import Monitor

            self.monitor = Monitor(
                self.store,
                self.evals,
                self.config.alarms,
                metrics=self.metrics,
                env=self.env,
            )
        if self.config.probes.enabled:
            from modelmix.quality.probes import Probes

            self.probes = Probes(
                self.run,
                self.evals,
                self.config.probes,
                self.clock,
                portfolio=self.portfolio,
                judge=self.config.judge.model if self.config.judge is not None else None,
            )
        if not self.background:
            return
        if self.config.policy.poll_seconds > 0:
            self._every(self.config.policy.poll_seconds, self.check_policy, "policy watcher")
        self._every(self.config.canary.check_seconds, self.check_canary, "canary guardrails")
        if self.explores:
            every = self.config.canary.check_seconds
            self._every(every, self.check_exploration, "exploration", first=0.0)
        if self.probes is not None:
            self._every(self.config.probes.every_seconds, self.run_probes, "probes", first=0.0)
        if self.monitor is not None and self.config.alarms.enabled:
            self._every(self.config.alarms.check_seconds, self.check_alarms, "alarms")

    async def run_probes(self) -> None:
        if self.probes is not None:
            await self.probes.run_round()
            if self.monitor is not None and self.config.alarms.enabled:
                await self.check_alarms()

    async def check_alarms(self) -> None:
        if self.monitor is not None:
            await self.monitor.check(self.clock())

    def _every(
        self,
        seconds: float,
        job: Callable[[], Awaitable[object]],
        name: str,
        first: float | None = None,
    ) -> None:
        async def loop() -> None:
            await self.sleep(seconds if first is None else first)
            while True:
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("quality job %s failed", name)
                await self.sleep(seconds)

        self._tasks.append(asyncio.get_running_loop().create_task(loop(), name=name))

    async def flush(self) -> None:
        """Wait for background calls, then for their writes (tests)."""
        await self.pool.wait()
        await asyncio.to_thread(self.writer.flush)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        await self.pool.close()
        if self.monitor is not None:
            await self.monitor.close()
        await asyncio.to_thread(self.writer.close)
        self.store.close()
        self.explorer.close()
        self.evals.close()
        self.policies.close()
        if self.shared is not None:
            self.shared.close()
