"""The staged cascade's learned gate: pure decision rules shared by the gateway and training.

A staged cascade calls groups of models (*stages*) in order, e.g. two cheap models, then a
third cheap one, then the strong tier. After each stage it looks at the final answers received
so far:

* For every distinct answer, its *support mask* says which of the called models gave it. A
  table learned on labelled traffic gives P(answer right | predicted category, stage, mask),
  shrunk towards the rate for answers with as many supporters. The answer with the highest
  probability is the current answer (so "choose the final answer by learned reliability", not
  plain plurality: the strong model alone can outvote two cheap models that it beats there).
* Gain gate, one knob ``lam`` (USD per unit of quality, the *price of quality*): calling the
  stages up to ``j`` is worth it when ``lam * (P_j - P_now) > predicted cost of those stages``.
  ``P_j`` is the learned mean correctness of the answer after stage ``j`` from states like this
  one; the cost of a later model's call is the prompt's exact tokens times its price plus its
  completion tokens, predicted from the prompt and refined with the completion lengths the first
  stage actually returned (long answers from the cheap models announce long answers from the
  strong one). ``lam`` near 0 accepts the first stage's answer; a large ``lam`` calls every stage.
* Two plans after the first stage: every stage in order, or the same cascade without its
  tie-breaking stage (stage 1), so that a disagreement the tie-breaker is unlikely to settle
  goes straight to the strong model (``direct``, a gate of its own, trained on the same
  traffic). After the first stage the gate follows the plan with the larger net gain, or stops
  when neither gains (``first_step``); later stages follow that plan's gate.

No I/O and no look at anything a call has not returned: the gateway's plan and the offline
simulation in training run these same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelmix.routing.learned.calibration import Calibration
from modelmix.routing.verifiers import normalise_answer

#: Weight of the shrinkage prior (pseudo-counts) in the table estimates.
ALPHA = 2.0


def answer_key(value: object) -> str | None:
    """The form in which the gate compares final answers (training and gateway alike): the
    verifier's normalised answer, except that an explicit empty or whitespace-only string is
    kept as it is (it is a real answer, e.g. a function returning ``''``), and None is none."""
    if isinstance(value, str) and not value.strip():
        return value
    return normalise_answer(value)


def support_masks(answers: Sequence[str | None]) -> dict[str, int]:
    """Each distinct answer -> bit mask of the positions (call order) that gave it."""
    out: dict[str, int] = {}
    for k, a in enumerate(answers):
        if a is not None:
            out[a] = out.get(a, 0) | (1 << k)
    return out


#: The category key of tables pooled over every training category (built only when
#: ``train_staged.POOL`` is set: measured, not kept; docs/routing-benchmark.md).
POOLED = "*"


def _key(cat: str, stage: int, mask: int) -> str:
    return f"{cat}|{stage}|{mask}"


@dataclass(slots=True)
class StagedGate:
    """Tables (counts, no data rows) of a staged cascade, and its knob calibration."""

    stages: list[list[str]]
    #: (correct, seen) per ``cat|stage|mask`` of an answer's support.
    table: dict[str, list[float]] = field(default_factory=dict)
    #: (correct, seen) per ``cat|stage|supporters``: the shrinkage prior.
    base: dict[str, list[float]] = field(default_factory=dict)
    #: per ``cat|stage|mask`` of the current answer: (sum of correctness, seen) after each stage.
    ahead: dict[str, list[list[float]]] = field(default_factory=dict)
    #: per later-stage model: weights of log1p(completion tokens) on
    #: [1, log1p(predicted tokens), mean log1p(first-stage completion tokens)] and residual var.
    tokens: dict[str, list[float]] = field(default_factory=dict)
    #: knob = log10(lam); share = realised share of the best model's quality (held back).
    calibration: Calibration = field(default_factory=lambda: Calibration([0.0], [1.0]))
    #: The same cascade without stage 1 (its first stage identical), or None: one plan only.
    direct: StagedGate | None = None
    #: ``calibration`` with each knob's share averaged over the training categories, each
    #: counting once (``safety.task_singles``' analogue): the promise on a new task.
    task_calibration: Calibration | None = None

    @property
    def models(self) -> list[str]:
        return [m for stage in self.stages for m in stage]

    @property
    def plans(self) -> list[StagedGate]:
        """The plans the first step chooses between: this gate, then ``direct`` if any."""
        return [self] if self.direct is None else [self, self.direct]

    # -- estimates ------------------------------------------------------------------------

    def p_answer(self, cat: str, stage: int, mask: int) -> float:
        b = self.base.get(f"{cat}|{stage}|{bin(mask).count('1')}", [1.0, 2.0])
        prior = (b[0] + 1.0) / (b[1] + 2.0)
        t = self.table.get(_key(cat, stage, mask), [0.0, 0.0])
        return (t[0] + ALPHA * prior) / (t[1] + ALPHA)

    def current(
        self, cat: str, stage: int, answers: Sequence[str | None]
    ) -> tuple[str | None, float, int]:
        """The most probably right answer after ``stage``, its probability and its mask.

        ``answers`` holds one entry per model of stages 0..stage, in order (None: no usable
        answer)."""
        masks = support_masks(answers)
        if not masks:
            return None, 0.0, 0
        scored = [(self.p_answer(cat, stage, m), -(m & -m), a, m) for a, m in masks.items()]
        p, _, answer, mask = max(scored)
        return answer, p, mask

    def later_tokens(self, model: str, predicted: float, first_stage: Sequence[float]) -> float:
        """Expected completion tokens of a later-stage ``model``, given the router's prediction
        and the completion tokens the first stage's calls returned."""
        w = self.tokens.get(model)
        if w is None or not first_stage:
            return predicted
        seen = sum(math.log1p(t) for t in first_stage) / len(first_stage)
        mu = w[0] + w[1] * math.log1p(predicted) + w[2] * seen
        return max(math.expm1(mu + w[3] / 2.0), 1.0)

    def go_on(
        self,
        cat: str,
        stage: int,
        mask: int,
        p_now: float,
        later_costs: Sequence[float],
        lam: float,
    ) -> tuple[bool, float]:
        """Whether calling more stages is worth its cost at price of quality ``lam``, and the
        best net gain. ``later_costs[i]``: predicted cost of stage ``stage + 1 + i``."""
        row = self.ahead.get(_key(cat, stage, mask))
        best = -math.inf
        spent = 0.0
        for i, c in enumerate(later_costs):
            j = stage + 1 + i
            spent += c
            if row is not None and j < len(row) and row[j][1] > 0:
                p_j = (row[j][0] + ALPHA * p_now) / (row[j][1] + ALPHA)
            else:
                p_j = p_now
            best = max(best, lam * (p_j - p_now) - spent)
        return best > 0.0, best

    def first_step(
        self,
        cat: str,
        mask: int,
        p_now: float,
        later_costs: Sequence[Sequence[float]],
        lam: float,
    ) -> tuple[int | None, float]:
        """After the first stage: the plan to follow (index into ``plans``), or None to stop
        there, and its net gain. ``later_costs[k]``: plan ``k``'s predicted cost of each of its
        stages after the first."""
        gains = [
            plan.go_on(cat, 0, mask, p_now, later_costs[k], lam)[1]
            for k, plan in enumerate(self.plans)
        ]
        k = max(range(len(gains)), key=lambda i: gains[i])
        return (k if gains[k] > 0.0 else None), gains[k]

    # -- storage --------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "table": self.table,
            "base": self.base,
            "ahead": self.ahead,
            "tokens": self.tokens,
            "calibration": self.calibration.as_dict(),
            **({} if self.direct is None else {"direct": self.direct.as_dict()}),
            **(
                {}
                if self.task_calibration is None
                else {"task_calibration": self.task_calibration.as_dict()}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StagedGate:
        direct = cls.from_dict(d["direct"]) if d.get("direct") is not None else None
        task = d.get("task_calibration")
        return cls(
            stages=[list(s) for s in d["stages"]],
            table={k: [float(x) for x in v] for k, v in d["table"].items()},
            base={k: [float(x) for x in v] for k, v in d["base"].items()},
            ahead={k: [[float(x) for x in r] for r in v] for k, v in d["ahead"].items()},
            tokens={k: [float(x) for x in v] for k, v in d["tokens"].items()},
            calibration=_calibration(d["calibration"]),
            direct=direct,
            task_calibration=None if task is None else _calibration(task),
        )


def _calibration(cal: dict[str, Any]) -> Calibration:
    return Calibration(
        [float(x) for x in cal["knob"]],
        [float(x) for x in cal["share"]],
        [float(x) for x in cal.get("cost_share", [])],
        [float(x) for x in cal.get("se", [])],
    )
