"""A canary's guardrails: promote or roll back on evidence, not on raw differences.

Each check ("look") compares the two arms over the client requests they served since the
canary started (``decision.canary``, read back from the ledger):

* quality: per request, the mean feedback score if a client rated it, else the judge's score;
* error rate: requests that ended in an error;
* cost: USD per successful request.

Tests are one-sided z tests at level ``alpha / max_looks`` per look (Bonferroni over the looks
the canary may take: repeated peeking cannot push the chance of a wrong promotion or rollback
above ``alpha``). Proportions use the Agresti-Caffo adjusted difference (quality scores in
[0, 1] count as their sum: conservative), cost Welch's test of a ratio.

* **roll back** as soon as the candidate is significantly worse than the margins allow on any
  guardrail: quality below stable's minus ``quality_margin``, an error rate above stable's
  plus ``error_margin``, or a mean cost above ``(1 + max_cost_increase)`` x stable's;
* **promote** once every guardrail has ``min_samples`` per arm and the candidate is shown
  non-inferior on each: quality above stable's minus ``quality_margin``, error rate below
  stable's plus ``error_margin``, cost below ``(1 + max_cost_increase)`` x stable's;
* after ``max_looks`` looks without a verdict, roll back (inconclusive: keep what is known).

A look is taken each time the candidate's arm has ``min_samples`` more requests than at the
previous one, so ``max_looks x min_samples`` bounds the candidate's traffic before a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from modelmix.quality.config import CanaryConfig
from modelmix.quality.store import CLIENT_APIS, QualityStore
from modelmix.stats import (
    Moments,
    mean_difference_z,
    normal_sf,
    proportion_difference_z,
    z_quantile,
)


@dataclass(slots=True)
class Arm:
    requests: int = 0
    errors: int = 0
    labelled: int = 0
    quality_sum: float = 0.0
    costs: list[float] = field(default_factory=list)

    @property
    def quality(self) -> float | None:
        return self.quality_sum / self.labelled if self.labelled else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def cost(self) -> float | None:
        return sum(self.costs) / len(self.costs) if self.costs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "labelled": self.labelled,
            "quality": self.quality,
            "error_rate": self.error_rate,
            "cost_per_request": self.cost,
        }


@dataclass(slots=True)
class Verdict:
    #: ``continue``, ``promote`` or ``rollback``.
    action: str
    reasons: list[str]
    tests: dict[str, dict[str, Any]]
    stable: Arm
    candidate: Arm
    level: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": self.reasons,
            "tests": self.tests,
            "stable": self.stable.as_dict(),
            "candidate": self.candidate.as_dict(),
            "alpha_per_look": self.level,
        }


def read_arms(store: QualityStore, candidate: str, since: float) -> tuple[Arm, Arm]:
    """(stable, candidate) arms of the canary of ``candidate`` from the ledger."""
    marks = ", ".join("?" * len(CLIENT_APIS))
    rows = store.query(
        "SELECT r.status, r.cost_usd, json_extract(r.decision, '$.canary.arm') AS arm, "
        "(SELECT AVG(f.score) FROM feedback f WHERE f.request_id = r.id "
        " AND f.score IS NOT NULL) AS feedback, "
        "(SELECT AVG(j.score) FROM judgements j WHERE j.request_id = r.id "
        " AND j.model = r.final_model) AS judged "
        "FROM requests r WHERE r.started_at >= ? "
        "AND json_extract(r.decision, '$.canary.candidate') = ? "
        f"AND r.api IN ({marks}) AND r.status != 'client_closed'",
        (since, candidate, *CLIENT_APIS),
    )
    arms = {"stable": Arm(), "candidate": Arm()}
    for r in rows:
        arm = arms.get(r["arm"])
        if arm is None:
            continue
        arm.requests += 1
        if r["status"] == "error":
            arm.errors += 1
            continue
        arm.costs.append(float(Decimal(r["cost_usd"])))
        label = r["feedback"] if r["feedback"] is not None else r["judged"]
        if label is not None:
            arm.labelled += 1
            arm.quality_sum += float(label)
    return arms["stable"], arms["candidate"]


def _test(z: float, level: float, passed: bool, enough: bool, what: str) -> dict[str, Any]:
    return {
        "z": None if math.isnan(z) else (z if math.isfinite(z) else math.copysign(99.0, z)),
        "p": normal_sf(abs(z)) if math.isfinite(z) else 0.0,
        "passed": passed,
        "enough_data": enough,
        "what": what,
    }


def decide(stable: Arm, candidate: Arm, settings: CanaryConfig, looks: int) -> Verdict:
    """The guardrails' verdict at look number ``looks`` (1 for the first)."""
    level = settings.alpha / settings.max_looks
    z_crit = z_quantile(1 - level)
    n_min = settings.min_samples
    tests: dict[str, dict[str, Any]] = {}
    harm: list[str] = []
    passed: list[bool] = []

    # quality (higher is better)
    q_enough = stable.labelled >= n_min and candidate.labelled >= n_min
    if q_enough:
        args = (stable.quality_sum, stable.labelled, candidate.quality_sum, candidate.labelled)
        z_harm = proportion_difference_z(*args, delta=-settings.quality_margin)
        z_ok = z_harm  # the same statistic, against the other tail
        if z_harm < -z_crit:
            harm.append(
                f"quality {candidate.quality:.3f} is below stable's {stable.quality:.3f} "
                f"minus {settings.quality_margin} (z = {z_harm:.2f})"
            )
        tests["quality"] = _test(
            z_ok, level, z_ok > z_crit, True, f"non-inferior within {settings.quality_margin}"
        )
    else:
        tests["quality"] = _test(
            math.nan, level, False, False, f"needs {n_min} labelled requests per arm"
        )
    passed.append(tests["quality"]["passed"])

    # error rate (lower is better)
    e_enough = stable.requests >= n_min and candidate.requests >= n_min
    if e_enough:
        args_e = (stable.errors, stable.requests, candidate.errors, candidate.requests)
        z_harm = proportion_difference_z(*args_e, delta=settings.error_margin)
        z_ok = z_harm
        if z_harm > z_crit:
            harm.append(
                f"error rate {candidate.error_rate:.3f} is above stable's "
                f"{stable.error_rate:.3f} plus {settings.error_margin} (z = {z_harm:.2f})"
            )
        tests["errors"] = _test(
            z_ok, level, z_ok < -z_crit, True, f"non-inferior within {settings.error_margin}"
        )
    else:
        tests["errors"] = _test(math.nan, level, False, False, f"needs {n_min} requests per arm")
    passed.append(tests["errors"]["passed"])

    # cost per request (lower is better), as a ratio
    c_enough = len(stable.costs) >= n_min and len(candidate.costs) >= n_min
    scale = 1 + settings.max_cost_increase
    if c_enough:
        a, b = Moments.of(stable.costs), Moments.of(candidate.costs)
        z = mean_difference_z(a, b, scale=scale)
        if z > z_crit:
            harm.append(
                f"cost per request ${b.mean:.6f} is above {scale:.2f} x stable's ${a.mean:.6f} "
                f"(z = {z:.2f})"
            )
        tests["cost"] = _test(z, level, z < -z_crit, True, f"at most {scale:.2f} x stable")
    else:
        tests["cost"] = _test(math.nan, level, False, False, f"needs {n_min} answers per arm")
    passed.append(tests["cost"]["passed"])

    if harm:
        return Verdict("rollback", harm, tests, stable, candidate, level)
    if all(passed):
        reasons = [f"{name}: {t['what']} (z = {t['z']:.2f})" for name, t in tests.items()]
        return Verdict("promote", reasons, tests, stable, candidate, level)
    if looks >= settings.max_looks:
        return Verdict(
            "rollback",
            [f"inconclusive after {looks} looks: keeping the stable version"],
            tests,
            stable,
            candidate,
            level,
        )
    return Verdict("continue", [], tests, stable, candidate, level)
