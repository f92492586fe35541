"""Do no harm: which trained setting a route serves for a requested quality target.

Training measures every knob setting of every strategy out of fold on its own data (the
calibration tables: realised share of the best model's quality and share of its cost), and
every single model on the same prompts. A setting is *harmful* when some single model had more
quality for less money there; a setting costing more than always-best is never worth serving
either (always-best keeps 100% of the quality at 100% of the cost). For a ``quality_target``
the route serves the cheapest safe setting whose measured share reaches the target plus a
margin (``margin_for``: from the share's standard error, so the promise holds on unseen
prompts), across the strategies it may use: the cascade's settings, one learned call, or one
single model. When no safe setting reaches the target, it serves the *safe model*: the best
single model.

Everything here runs once, when a route is built; nothing is added per request.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from modelmix.routing.learned.artifact import Calibration, RouterArtifact

#: Settings within this share of always-best's cost count as costing the same.
COST_SLACK = 1e-6
#: A setting must cost at most this share of always-best's cost to be preferred to it: one
#: that keeps the best model's quality at about its cost gains nothing and is noise.
MAX_COST_SHARE = 0.9
#: Single models within this share of the best one's quality count as its peers.
NEAR = 0.01
#: Fewer labelled prompts than this: no promise beyond the safe model.
MIN_PROMPTS = 100
#: A target is served by a setting whose measured share reaches it plus a margin
#: (``margin_for``): one standard error of that share, less up to half of this tolerance
#: (the realised share's allowed distance from the target, either way), and never under
#: half a standard error. A full standard error left about a point of over-delivery at
#: every target (and paid for it); with well-measured shares the margin is now half of one,
#: and it stays near a full one where the shares are uncertain (small training data).
TOLERANCE = 0.015


def margin_for(se: float) -> float:
    """How far above the target a setting's measured share must be to serve it."""
    return max(se - TOLERANCE / 2, se / 2)


#: In the task-averaged shares, one category credits a model with at most this share of the
#: best model's quality there: where the best model scores near zero (MMLU's
#: high_school_mathematics labels give GPT-4 3%), the ratio would otherwise dominate the
#: average and make a cheap model the "safe" one for unfamiliar prompts.
MAX_TASK_SHARE = 1.25
#: A cascade whose first stage yields a comparable answer on fewer prompts than this share
#: cannot verify on this traffic and is not offered.
MIN_VERIFIABLE = 0.5


@dataclass(frozen=True, slots=True)
class Option:
    """One setting measured out of fold: ``kind`` is "single", "learned", "cascade", "profile"
    or "blind" (the answer-blind cascade); ``knob`` is log10(wtp), log10(lam), the profile
    router's threshold or tau (NaN for a single model, named in ``model``)."""

    kind: str
    share: float
    cost_share: float
    knob: float = math.nan
    model: str = ""
    se: float = 0.0

    def label(self) -> str:
        if self.kind == "single":
            return f"single model {self.model}"
        if self.kind == "profile":
            return f"profile (threshold {self.knob:.3f})"
        name = {"learned": "log10 wtp", "blind": "tau"}.get(self.kind, "log10 lam")
        return f"{self.kind} ({name} {self.knob:.2f})"


def singles(meta: Mapping[str, Any], models: Sequence[str] | None = None) -> list[Option]:
    """The single models' options from an artifact's ``meta["singles"]`` (share, cost share),
    restricted to ``models`` when given."""
    table: Mapping[str, Sequence[float]] = meta.get("singles", {})
    keep = set(models) if models is not None else set(table)
    return [
        Option("single", float(v[0]), float(v[1]), model=m) for m, v in table.items() if m in keep
    ]


def task_singles(meta: Mapping[str, Any], models: Sequence[str] | None = None) -> list[Option]:
    """The single models with each one's share averaged over the training categories, each
    category counting once (``meta["category_singles"]``: per category, its share of the best
    model's quality there): the expected share on a new task drawn like the training tasks,
    the promise for a prompt unlike every training task (a share pooled over prompts
    weighs the tasks by their size instead), each category's share capped at
    ``MAX_TASK_SHARE``. The pooled figures when the artifact has none."""
    by_cat: Mapping[str, Mapping[str, float]] = meta.get("category_singles", {})
    out = []
    for o in singles(meta, models):
        shares = [min(float(c[o.model]), MAX_TASK_SHARE) for c in by_cat.values() if o.model in c]
        share = sum(shares) / len(shares) if shares else o.share
        out.append(Option("single", share, o.cost_share, model=o.model))
    return out


def options(kind: str, cal: Calibration | None) -> list[Option]:
    """A calibration table's settings as options."""
    if cal is None or len(cal.cost_share) != len(cal.share):
        return []
    se = cal.se if len(cal.se) == len(cal.share) else [0.0] * len(cal.share)
    return [
        Option(kind, s, c, knob=k, se=e)
        for k, s, c, e in zip(cal.knob, cal.share, cal.cost_share, se, strict=True)
    ]


def beaten_by(option: Option, single: Sequence[Option]) -> Option | None:
    """The cheapest single model with more quality for less money than ``option``."""
    better = [s for s in single if s.share > option.share and s.cost_share < option.cost_share]
    return min(better, key=lambda s: s.cost_share) if better else None


def is_safe(option: Option, single: Sequence[Option]) -> bool:
    """Not beaten by a single model, and (unless it is one) clearly cheaper than always-best."""
    if option.kind == "single":
        return beaten_by(option, single) is None
    return beaten_by(option, single) is None and option.cost_share <= MAX_COST_SHARE


def safe_model(single: Sequence[Option]) -> Option | None:
    """The best single model: the cheapest of those within ``NEAR`` of the top share (a sample
    can rank a much dearer twin of the best model first by a fraction of a point)."""
    if not single:
        return None
    top = max(s.share for s in single)
    return min((s for s in single if s.share >= top - NEAR), key=lambda s: s.cost_share)


def peers(single: Sequence[Option]) -> list[str]:
    """The single models within ``NEAR`` of the top share: the best model and its peers, which
    the measured shares cannot tell apart. A route that serves the best model serves, per
    prompt, whichever of them that prompt's predicted tokens make cheapest (the ranking of
    their costs on the training prompts need not hold on a prompt of another task). The
    shares are those the served model was chosen from: pooled, or averaged over the tasks
    for a prompt unlike the training ones."""
    if not single:
        return []
    top = max(s.share for s in single)
    return [s.model for s in single if s.share >= top - NEAR]


@dataclass(frozen=True, slots=True)
class Choice:
    """What a route serves: ``option``, or per request ``upper`` with probability ``p_upper``
    (a mix of two neighbours on the safe frontier hits a target between their shares)."""

    option: Option
    #: Why this is served rather than what the strategy would do (None: nothing to say).
    note: str | None = None
    upper: Option | None = None
    p_upper: float = 0.0

    def pick(self, u: float) -> Option:
        """The option for a request whose uniform draw in [0, 1) is ``u``."""
        return self.upper if self.upper is not None and u < self.p_upper else self.option

    def describe(self) -> str:
        if self.upper is None:
            return self.option.label()
        return f"{self.option.label()}, or {self.upper.label()} for {self.p_upper:.0%} of prompts"


@lru_cache(maxsize=16)  # (a route may draw twice for one request; a long text costs 0.05 ms)
def request_draw(text: str) -> float:
    """A uniform draw in [0, 1) fixed by the prompt's text (the same prompt, the same route)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) / 2.0**32


def safe_frontier(pool: Sequence[Option]) -> list[Option]:
    """The options on the upper concave hull of (cost share, share), cheapest first."""
    by_cost = sorted(pool, key=lambda o: (o.cost_share, -o.share))
    rising: list[Option] = []
    for o in by_cost:
        if not rising or o.share > rising[-1].share:
            rising.append(o)
    hull: list[Option] = []
    for o in rising:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (b.share - a.share) * (o.cost_share - a.cost_share) <= (o.share - a.share) * (
                b.cost_share - a.cost_share
            ):
                hull.pop()
            else:
                break
        hull.append(o)
    return hull


def choose(
    target: float,
    candidates: Sequence[Option],
    single: Sequence[Option],
    margin: bool = True,
    prompts: int | None = None,
) -> Choice | None:
    """The cheapest point of the safe frontier (candidates and single models) whose measured
    share reaches ``target`` (plus ``margin_for`` its standard error when ``margin``): one option,
    or a mix of two neighbours. Else the safe model. With fewer than ``MIN_PROMPTS`` labelled
    ``prompts``, only single models are promised."""
    if prompts is not None and prompts < MIN_PROMPTS:
        candidates = []
    cap = safe_model(single)
    capped = [s for s in single if cap is None or s.cost_share <= cap.cost_share]
    hull = safe_frontier([o for o in [*candidates, *capped] if is_safe(o, single)])
    for k, o in enumerate(hull):
        need = target + (margin_for(o.se) if margin else 0.0)
        if o.share < need:
            continue
        if k == 0:
            return Choice(o)
        lo = hull[k - 1]
        need = target + (margin_for(max(lo.se, o.se)) if margin else 0.0)
        p = min(max((need - lo.share) / max(o.share - lo.share, 1e-12), 0.0), 1.0)
        return Choice(o) if p >= 1.0 - 1e-9 else Choice(lo, upper=o, p_upper=p)
    fallback = cap
    if fallback is None:
        return None
    return Choice(
        fallback,
        f"no safe setting reached quality_target {target:g} out of fold: "
        f"served by the safe model {fallback.model}",
    )


def for_knob(knob: float, candidates: Sequence[Option], single: Sequence[Option]) -> Choice | None:
    """For a knob given as is (``wtp``, ``lam``): None when the nearest measured setting is
    safe (serve it as asked), else the safe choice for the quality that setting realised."""
    if not candidates:
        return None
    near = min(candidates, key=lambda o: abs(o.knob - knob))
    beaten = beaten_by(near, single)
    if is_safe(near, single):
        return None
    choice = choose(near.share, candidates, single, margin=False)
    if choice is None:
        return None
    why = f"beaten by {beaten.model}" if beaten else "costs more than always-best"
    return Choice(
        choice.option,
        f"the knob as given is unsafe out of fold ({why}): served {choice.describe()}",
        choice.upper,
        choice.p_upper,
    )


def harm_rows(candidates: Sequence[Option], single: Sequence[Option]) -> list[dict[str, Any]]:
    """Each option with the single model that beats it (for ``router train``'s table)."""
    rows = []
    for o in candidates:
        b = beaten_by(o, single)
        rows.append(
            {
                "setting": o.label(),
                "share": round(o.share, 4),
                "cost_share": round(o.cost_share, 4),
                "beaten_by": b.model if b else None,
                "above_best_cost": o.cost_share > 1.0 + COST_SLACK,
            }
        )
    return rows


#: The targets ``router train`` reports what it would serve for.
REPORT_TARGETS = (0.8, 0.85, 0.9, 0.95, 0.98, 1.0)


def report_lines(artifact: RouterArtifact) -> list[str]:
    """What ``router train`` says about doing no harm: per strategy, how many measured
    settings a single model beats (or that cost more than always-best), and per target the
    setting a learned and a cascade route would serve."""
    single = singles(artifact.meta)
    learned = options("learned", artifact.calibration)
    staged = artifact.staged
    cascade = options("cascade", staged.calibration) if staged is not None else []
    verifiable = float(artifact.meta.get("staged_verifiable", 1.0))
    lines = ["do no harm (out of fold on the training data, against the single models):"]
    for kind, opts in (("learned", learned), ("cascade", cascade)):
        rows = harm_rows(opts, single)
        beaten = sum(r["beaten_by"] is not None for r in rows)
        dear = sum(r["above_best_cost"] for r in rows)
        lines.append(
            f"  {kind}: {len(rows)} settings, {beaten} beaten by a single model on both axes, "
            f"{dear} above always-best's cost (those are never served)"
        )
    if staged is not None and verifiable < MIN_VERIFIABLE:
        lines.append(
            f"  cascade: not offered (a comparable first-stage answer on {verifiable:.0%} of "
            "prompts: the stages cannot verify on this traffic)"
        )
        cascade = []
    prompts = artifact.meta.get("prompts")
    learned = options("learned", artifact.target_calibration)
    lines += _unseen_lines(artifact)
    for t in REPORT_TARGETS:
        a = choose(t, learned, single, prompts=prompts)
        b = choose(t, [*cascade, *learned], single, prompts=prompts)
        lines.append(f"  quality_target {t:g}: learned -> {_served(a)}; cascade -> {_served(b)}")
    lines.append(
        f"  serving the best model: per prompt, the one of {', '.join(peers(single))} its "
        "predicted tokens make cheapest (within a point of the top share)"
    )
    return lines + _novel_lines(artifact)


def _unseen_lines(artifact: RouterArtifact) -> list[str]:
    """What ``router train`` says about the targets' table for unseen categories."""
    sh = artifact.shift
    if sh is None:
        return []
    gap = max((abs(r - g) for r, g in zip(sh.random, sh.grouped, strict=True)), default=0.0)
    return [
        "  targets on unseen categories: measured on random and on category-grouped folds; "
        f"a prompt whose category head's confidence is under {sh.threshold:.3f} gets "
        f"{sh.boost:+.2f} decades of willingness to pay (the promise: the mean of the two "
        f"tables, which differ by up to {gap * 100:.1f} points over all knobs)"
    ]


def _novel_lines(artifact: RouterArtifact) -> list[str]:
    """What ``router train`` says about prompts unlike the training ones."""
    fam = artifact.familiarity
    if fam is None:
        return []
    lines = [
        f"unlike the training prompts: familiarity under {fam.threshold:.3f} (the share of a "
        f"prompt's words one of {len(fam.groups)} training tasks used; measured out of fold)"
    ]
    task = task_singles(artifact.meta)
    for t in REPORT_TARGETS:
        lines.append(f"  quality_target {t:g}: served by {_served(choose(t, [], task))}")
    lines.append(f"  the best model's peers there: {', '.join(peers(task))}")
    return lines


def _served(choice: Choice | None) -> str:
    if choice is None:
        return "as trained (no single-model figures)"
    return choice.describe()


def route_notes(config: Any) -> list[str]:
    """For ``config check``: what each learned or cascade route serves after the do-no-harm
    check, and why when it is not what the route's strategy would do by itself."""
    from modelmix.routing.strategy import Router

    try:
        router = Router(config.routes, {})
    except (ValueError, OSError) as exc:
        return [f"note: do-no-harm summary skipped: the routes do not build offline ({exc})"]
    lines = []
    for name, strategy in router.routes.items():
        served = getattr(strategy, "served", None)
        note = getattr(strategy, "safety_note", None)
        if served:
            lines.append(f"route {name}: serves {served}")
        if note:
            lines.append(f"route {name}: do no harm: {note}")
    return lines
