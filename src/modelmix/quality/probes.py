"""Golden-set probes: the same items sent to every model on a schedule.

Each round is an eval run of kind ``probe`` (``probe-<unix ms>``) through the gateway's
request lifecycle (``Gateway.run``), so its results sit in the eval tables beside every other
score, and the alarms read them as each model's quality, length, refusal and fingerprint
series over time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from modelmix.evals.dataset import load_dataset
from modelmix.evals.runner import EvalRunner, RunSummary
from modelmix.evals.store import EvalStore
from modelmix.quality.config import ProbesConfig

if TYPE_CHECKING:
    from modelmix.evals.calls import Run
    from modelmix.portfolio import ModelEntry


class Probes:
    def __init__(
        self,
        run: Run,
        evals: EvalStore,
        config: ProbesConfig,
        clock: Callable[[], float],
        *,
        portfolio: Mapping[str, ModelEntry],
        judge: str | None,
    ) -> None:
        assert config.golden is not None  # the config requires it when probes are enabled
        self.dataset = load_dataset(config.golden)  # a bad file fails the start, not round 1
        self.run = run
        self.evals = evals
        self.config = config
        self.clock = clock
        self.models = list(config.models) or [
            name for name, entry in portfolio.items() if entry.unavailable is None
        ]
        self.judge = judge
        self.rounds = 0

    async def run_round(self) -> RunSummary:
        run_id = f"probe-{int(self.clock() * 1000)}"
        runner = EvalRunner(
            self.run, self.evals, concurrency=self.config.concurrency, judge=self.judge
        )
        summary = await runner.run(
            run_id, self.dataset, self.models, kind="probe", settings={"round": self.rounds}
        )
        self.rounds += 1
        return summary
