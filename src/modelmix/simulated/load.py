"""Runtime speed and capacity knobs of the simulated upstream, per upstream model name, for
benchmarks and tests of adaptive routing: an extra delay before each answer (a model made slow
mid-run, then recovered) and a capacity (requests served at once; the others wait in a queue,
as on a vLLM server), with in-flight and peak counts to check what a deployment was sent.

Set from the process that runs the simulator: ``sim.load.set_delay("m", 800)``,
``sim.load.set_capacity("m", 4)``. Models without a knob are served as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator


class Load:
    def __init__(self) -> None:
        self.delay_ms: dict[str, float] = {}
        self.capacity: dict[str, int] = {}
        self.in_flight: Counter[str] = Counter()  # admitted or waiting
        self.running: Counter[str] = Counter()
        self.peak_running: Counter[str] = Counter()
        self._slots: dict[str, asyncio.Semaphore] = {}

    def set_delay(self, model: str, ms: float) -> None:
        """Wait ``ms`` more before answering ``model`` (0: no extra delay)."""
        if ms:
            self.delay_ms[model] = ms
        else:
            self.delay_ms.pop(model, None)

    def set_capacity(self, model: str, n: int | None) -> None:
        """Serve at most ``n`` requests for ``model`` at once (None: no limit)."""
        self._slots.pop(model, None)
        if n is None:
            self.capacity.pop(model, None)
        else:
            self.capacity[model] = n

    def watched(self, model: str) -> bool:
        return model in self.delay_ms or model in self.capacity

    @contextlib.asynccontextmanager
    async def serving(self, model: str) -> AsyncIterator[None]:
        """Hold one of ``model``'s slots (waiting for one) and its delay."""
        self.in_flight[model] += 1
        try:
            cap = self.capacity.get(model)
            slot = None
            if cap is not None:
                slot = self._slots.setdefault(model, asyncio.Semaphore(cap))
                await slot.acquire()
            try:
                self.running[model] += 1
                self.peak_running[model] = max(self.peak_running[model], self.running[model])
                delay = self.delay_ms.get(model)
                if delay:
                    await asyncio.sleep(delay / 1000)
                yield
            finally:
                self.running[model] -= 1
                if slot is not None:
                    slot.release()
        finally:
            self.in_flight[model] -= 1

    def metrics(self) -> str:
        """vLLM-style queue gauges (Prometheus text) for every watched model."""
        lines = ["# TYPE vllm:num_requests_running gauge", "# TYPE vllm:num_requests_waiting gauge"]
        for model in sorted(set(self.delay_ms) | set(self.capacity)):
            running = self.running[model]
            lines.append(f'vllm:num_requests_running{{model_name="{model}"}} {running}')
            waiting = self.in_flight[model] - running
            lines.append(f'vllm:num_requests_waiting{{model_name="{model}"}} {waiting}')
        return "\n".join(lines) + "\n"
