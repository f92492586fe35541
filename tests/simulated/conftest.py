"""A fresh simulator per test (it starts in a few milliseconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modelmix.simulated import Simulator, start_simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.stop()
