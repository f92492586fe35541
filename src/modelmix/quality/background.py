"""Fire-and-forget tasks with bounded concurrency: past the limit, new work is dropped.

The quality loop's judge and shadow calls run here, beside client requests on the same event
loop. A client never waits for them, and under load they shed themselves (``dropped``) rather
than queue up behind the clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("modelmix.quality")


class BackgroundPool:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.dropped = 0
        self.failed = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, make: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> bool:
        """Start ``make(*args)`` now unless ``limit`` tasks are running (then drop it)."""
        if self._closed or len(self._tasks) >= self.limit:
            self.dropped += 1
            return False
        task = asyncio.get_running_loop().create_task(make(*args))
        self._tasks.add(task)
        self.started += 1
        task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failed += 1
            log.warning("quality background task failed: %r", exc)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the running tasks (tests, graceful stop)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop accepting work, give running tasks ``timeout`` seconds, cancel the rest."""
        self._closed = True
        await self.wait(timeout)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
