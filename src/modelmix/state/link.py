"""One replica's connection to Redis: whether it is up, what to do while it is down, and the
writes that need no answer.

Reads that decide a request (reserve, take) are one round trip each with a short timeout
(``state.timeout``): on the serving event loop they are awaited on that loop's pipelined
connection (``run``, ``state/resp.py``: ``Accounting.admit_async``), so the loop serves other
requests meanwhile; without a running loop (library use) they block on redis-py's client.
Writes whose answer nobody waits for (settling a reservation, correcting a token bucket) are
written on the loop's connection at once, their answers not awaited (``send``); without a loop
or a connection, and for those a lost connection never answered, they go to a queue that one
background thread sends in pipelined batches. While Redis is down the queue keeps them
(bounded) and sends them once it answers again, so a short outage loses no settlement.

Down: the first command that fails to connect or times out (on either client) marks Redis
down. From then on the
request path does not try Redis at all (no timeout per request): ``fail_closed`` refuses with
503, ``fail_open`` uses this replica's own counters. The background thread pings Redis every
``probe_interval``; when it answers, the queued writes go first, then Redis is up again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from modelmix.budgets.limits import InMemoryBucketStore
from modelmix.budgets.store import InMemorySpendStore
from modelmix.errors import GatewayError
from modelmix.state import scripts
from modelmix.state.config import StateConfig
from modelmix.state.resp import AsyncRedis, Fired

__all__ = ["DOWN_ERRORS", "RedisLink", "StateUnavailable"]

log = logging.getLogger("modelmix.state")

#: What "Redis is unreachable" looks like to redis-py.
DOWN_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)
#: Writes kept while Redis is down; past this the oldest are dropped (and counted).
MAX_PENDING = 100_000
_BATCH = 256

#: A queued write: (script name, keys, args).
Write = tuple[str, list[str], list[Any]]


class StateUnavailable(GatewayError):
    """Redis is down and ``state.on_unavailable`` is ``fail_closed``: HTTP 503."""

    def __init__(self) -> None:
        super().__init__(
            "unavailable",
            "The gateway's shared state (Redis) is unreachable, and budgets and rate limits "
            "cannot be checked without it (state.on_unavailable: fail_closed). Retry shortly.",
            code="shared_state_unavailable",
        )


class RedisLink:
    """The client, the up/down state, the local fallback counters and the writer thread."""

    def __init__(self, settings: StateConfig, client: redis.Redis | None = None) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.prefix = settings.prefix
        self.client: redis.Redis = client or redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
            retry=Retry(NoBackoff(), 1),  # one reconnect (a restarted server), no waiting
            health_check_interval=0,
        )
        self.fail_open = settings.on_unavailable == "fail_open"
        self.up = True
        #: This replica's own counters, used only while Redis is down under fail_open.
        self.local_spend = InMemorySpendStore()
        self.local_buckets = InMemoryBucketStore()
        #: Requests admitted on the local counters; writes dropped because the queue was full.
        self.local_admissions = 0
        self.dropped_writes = 0
        self.outages = 0
        self._scripts: dict[str, Any] = {}
        self._pending: collections.deque[Write] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._busy = False
        #: The asyncio client of the event loop that serves requests (``state/resp.py``).
        self._aio: tuple[asyncio.AbstractEventLoop, AsyncRedis] | None = None
        self._thread = threading.Thread(target=self._run, name="modelmix-redis", daemon=True)
        self._thread.start()

    # -- the event loop's client -------------------------------------------------------------

    def aio(self, loop: asyncio.AbstractEventLoop) -> AsyncRedis:
        """The asyncio client of ``loop`` (made on first use; one per loop)."""
        found = self._aio
        if found is not None and found[0] is loop:
            return found[1]
        assert self.settings.redis_url is not None
        client = AsyncRedis(self.settings.redis_url, self.settings.timeout, self._lost_writes)
        self._aio = (loop, client)
        return client

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run the script ``name`` (``scripts.py``) on the running loop's client; raises one
        of ``DOWN_ERRORS`` when Redis is unreachable (the caller decides: ``lost``)."""
        client = self.aio(asyncio.get_running_loop())
        return await client.evalsha(getattr(scripts, name), keys, args)

    def _lost_writes(self, lost: list[Fired]) -> None:
        """Writes sent on a connection that was lost before they were answered: the writer
        thread sends them again once Redis answers (a write Redis applied just before the
        loss is applied twice: the same as the thread's own pipelines, and a restarted Redis
        has lost its counters anyway, seeded again from the ledger)."""
        with self._wake:
            self._pending.extend(lost)
            while len(self._pending) > MAX_PENDING:
                self._pending.popleft()
                self.dropped_writes += 1
            self._wake.notify_all()

    # -- scripts ---------------------------------------------------------------------------

    def script(self, name: str, source: str) -> Callable[..., Any]:
        """A registered Lua script (``EVALSHA``, loaded again after a Redis restart)."""
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = self.client.register_script(source)
        return found

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- up and down -----------------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        """A command failed to reach Redis: mark it down (the thread probes for its return)."""
        with self._wake:
            if self.up:
                self.up = False
                self.outages += 1
                log.warning(
                    "Redis unreachable (%s); %s until it answers again",
                    exc,
                    "counting on this replica alone" if self.fail_open else "refusing with 503",
                )
            self._wake.notify_all()

    def fallback(self) -> None:
        """Redis is down: raise the 503 (fail_closed), or return to use the local counters."""
        if not self.fail_open:
            raise StateUnavailable()

    def problems(self) -> list[str]:
        """For ``/ready``: Redis down under fail_closed makes this replica unready (it would
        refuse every counted request); under fail_open it stays ready, degraded. Pings Redis
        (blocking, at most ``state.timeout``: run it off the event loop)."""
        if self.up:
            try:
                self.client.ping()
            except DOWN_ERRORS as exc:
                self.lost(exc)
        if self.up or self.fail_open:
            return []
        return ["shared state (Redis) is unreachable"]

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- writes nobody waits for -----------------------------------------------------------

    def send(self, name: str, keys: list[str], args: list[Any]) -> None:
        """Queue a write: on the event loop's connection when one is up (sent now, its answer
        not awaited), else for the writer thread."""
        if self.up:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if self.aio(loop).fire(name, getattr(scripts, name), keys, args):
                    return
        with self._wake:
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self.dropped_writes += 1
            self._pending.append((name, keys, args))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (self.up and not self._pending):
                    self._wake.wait()
                if self._stopping and (not self._pending or not self.up):
                    return
                batch = [self._pending.popleft() for _ in range(min(_BATCH, len(self._pending)))]
                up = self.up
                self._busy = bool(batch)
            if not up and not self._probe():
                self._requeue(batch)
                with self._wake:
                    self._wake.wait(self.settings.probe_interval)
                continue
            if batch and not self._flush(batch):
                self._requeue(batch)
                continue
            with self._wake:
                self._busy = False
                self._wake.notify_all()
            if not up:
                with self._wake:
                    if not self._pending:
                        self.up = True
                        log.warning("Redis answers again: shared counters back in use")

    def _probe(self) -> bool:
        try:
            return bool(self.client.ping())
        except DOWN_ERRORS:
            return False

    def _flush(self, batch: list[Write]) -> bool:
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, keys, args in batch:
                self.script(name, getattr(scripts, name))(keys=keys, args=args, client=pipe)
            results = pipe.execute(raise_on_error=False)
        except DOWN_ERRORS as exc:
            self.lost(exc)
            return False
        except redis.RedisError:  # a bug, not an outage: do not retry it forever
            log.exception("Redis refused %d queued writes", len(batch))
            return True
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            log.error("Redis refused %d of %d writes: %s", len(failed), len(batch), failed[0])
        return True

    def _requeue(self, batch: list[Write]) -> None:
        with self._wake:
            self._pending.extendleft(reversed(batch))
            self._busy = False

    def _close_aio(self) -> None:
        found, self._aio = self._aio, None
        if found is None:
            return
        loop, client = found
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            client.close()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(client.close)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued write has been sent (False: not within ``timeout``)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (while Redis answers, for up to ``timeout``), then stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._close_aio()
        self._thread.join(timeout)
        if self._pending:
            log.warning("Redis: %d settlements not sent at shutdown", len(self._pending))
        self.client.close()
