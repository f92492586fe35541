"""The servers' own queue metrics (issue 15, item 2): poll an OpenAI-compatible server's
Prometheus ``/metrics`` (vLLM: ``vllm:num_requests_running`` and ``vllm:num_requests_waiting``,
labelled with ``model_name``) off the request path, and give running + waiting to the live
estimates (``LiveStats.queued``). A deployment whose server reports at least its ``capacity``
is then passed over like one with that many calls in flight from this gateway (``plan.py``,
``pick.py``), with the server's figure in the decision's reason.

A report is valid for three poll intervals. A server whose metrics cannot be read (refused,
timed out, not 200, no vLLM gauges) is logged once (and once more when it recovers) and its
deployments fall back to the gateway's own in-flight counting; no request ever waits for or
fails because of a poll. Each worker polls for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from modelmix.adaptive.live import LiveStats
from modelmix.errors import UpstreamError
from modelmix.providers.base import Deployment, HttpRequest
from modelmix.providers.http import Timeouts, UpstreamClient

log = logging.getLogger("modelmix.adaptive")

GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting")
#: A report counts for this many poll intervals.
VALID_FOR = 3.0


def parse_queue(text: str, model: str | None) -> int | None:
    """Running + waiting requests of ``model`` (lines labelled with another ``model_name`` are
    left out) from Prometheus text; None when neither gauge is there."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(GAUGES):
            continue
        name_labels, _, value = line.rpartition(" ")
        labels = name_labels.partition("{")[2]
        if model is not None and "model_name=" in labels and f'model_name="{model}"' not in labels:
            continue
        try:
            total += float(value)
        except ValueError:
            continue
        seen = True
    return int(total) if seen else None


@dataclass(slots=True, frozen=True)
class _Target:
    dep: str
    model: str
    interval: float
    timeout: float


class QueuePoller:
    """One polling task per metrics URL, for the deployments that configure one."""

    def __init__(
        self, deployments: Iterable[Deployment], live: LiveStats, client: UpstreamClient
    ) -> None:
        self.live = live
        self.client = client
        self.targets: dict[str, list[_Target]] = defaultdict(list)
        for d in deployments:
            if d.queue_metrics is not None:
                url, interval, timeout = d.queue_metrics
                self.targets[url].append(_Target(d.id, d.upstream_model, interval, timeout))
        #: URLs whose last poll failed (their deployments use in-flight counting).
        self.failing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def poll(self, url: str) -> bool:
        """Read ``url`` once and update its deployments; whether it could be read."""
        targets = self.targets[url]
        timeout = max(t.timeout for t in targets)
        try:
            status, body, _ = await self.client.exchange(
                HttpRequest("GET", url, {"accept": "text/plain"}, b""),
                Timeouts(connect=timeout, first_token=timeout, total=timeout),
            )
            text = body.decode("utf-8", "replace") if status == 200 else ""
            problem = None if status == 200 else f"HTTP {status}"
        except UpstreamError as exc:
            text, problem = "", str(exc)
        now = time.time()
        found = {t.dep: parse_queue(text, t.model) for t in targets}
        if problem is None and all(n is None for n in found.values()):
            problem = "no vLLM queue gauges"
        for t in targets:
            n = found[t.dep]
            if problem is None and n is not None:
                self.live.queued[t.dep] = (n, now + VALID_FOR * t.interval)
            else:
                self.live.queued.pop(t.dep, None)
        self._note(url, problem)
        return problem is None

    def _note(self, url: str, problem: str | None) -> None:
        if problem is not None and url not in self.failing:
            self.failing.add(url)
            log.warning(
                "queue metrics %s unreadable (%s): falling back to in-flight counting", url, problem
            )
        elif problem is None and url in self.failing:
            self.failing.discard(url)
            log.warning("queue metrics %s readable again", url)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for url, targets in self.targets.items():
            every = min(t.interval for t in targets)
            self._tasks.append(loop.create_task(self._loop(url, every), name=f"queue {url}"))

    async def _loop(self, url: str, every: float) -> None:
        while True:
            try:
                await self.poll(url)
            except Exception:  # never let a poll take the loop down
                log.exception("queue metrics poll of %s failed", url)
            await asyncio.sleep(every)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
