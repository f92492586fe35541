"""Golden-set probes: the same items sent to every model on a schedule.

Each round is an eval run of kind ``probe`` (``probe-<unix ms>``) through the gateway's
engine, so its results sit in the eval tables beside every other score, and the alarms read
them as each model's quality, length, refusal and fingerprint series over time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelmix.evals.dataset import load_dataset
from modelmix.evals.runner import EvalRunner, RunSummary
from modelmix.evals.store import EvalStore
from modelmix.quality.config import ProbesConfig

if TYPE_CHECKING:
    from modelmix.gateway import Gateway


class Probes:
    def __init__(
        self,
        gateway: Gateway,
        evals: EvalStore,
        config: ProbesConfig,
        clock: Callable[[], float],
    ) -> None:
        assert config.golden is not None  # the config requires it when probes are enabled
        self.dataset = load_dataset(config.golden)  # a bad file fails the start, not round 1
        self.gateway = gateway
        self.evals = evals
        self.config = config
        self.clock = clock
        self.models = list(config.models) or [
            name for name, entry in gateway.portfolio.items() if entry.unavailable is None
        ]
        judge = gateway.config.quality.judge
        self.judge = judge.model if judge is not None else None
        self.rounds = 0

    async def run_round(self) -> RunSummary:
        run_id = f"probe-{int(self.clock() * 1000)}"
        runner = EvalRunner(
            self.gateway, self.evals, concurrency=self.config.concurrency, judge=self.judge
        )
        summary = await runner.run(
            run_id, self.dataset, self.models, kind="probe", settings={"round": self.rounds}
        )
        self.rounds += 1
        return summary
