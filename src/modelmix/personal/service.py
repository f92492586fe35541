"""The gateway's personalisation: the background refresh of the offsets from the ledger.

``refresh`` (every ``refresh_seconds``, and once at start-up) estimates from the labelled
requests, writes ``personal_offsets`` (so ``modelmix report`` and the dashboard show them) and
swaps the dict the engine looks subjects up in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from modelmix.ledger.db import Location
from modelmix.personal.config import PersonalConfig
from modelmix.personal.offsets import Offsets
from modelmix.personal.store import PersonalStore

log = logging.getLogger("modelmix.personal")


class Personaliser:
    def __init__(self, location: Location, config: PersonalConfig) -> None:
        self.config = config
        self.offsets = Offsets()
        self._location = location
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> dict[str, float]:
        """Re-estimate from the ledger and serve the new offsets (blocking: run in a thread)."""
        cfg = self.config
        with self._lock:
            store = PersonalStore(self._location)
            try:
                store.refresh(cfg.prior_strength, cfg.cap, cfg.lookback_hours * 3600.0)
                active = store.active()
            finally:
                store.close()
        self.offsets.by_subject = active
        return active

    async def start(self) -> None:
        await asyncio.to_thread(self.refresh)
        if self.config.refresh_seconds > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("personalisation refresh failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
