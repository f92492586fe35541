"""Personalised routing on a simulated population of users (issue 15, item 3).

Prompts and answers are real: ``../shared/data/routing/zeroeval-dev.jsonl`` (GSM8K, MATH,
CRUXEval prompts; each model's answer scored right or wrong), three models of its portfolio
(llama-3.1-8b, gpt-4o-mini, claude-3.5-sonnet) with their list prices and mean scores as the
learned router's quality profiles (``quality_target: 0.95``, the shipped artifact's heads).

Users are simulated; each accepts an answer with a probability that depends on whether it was
right and on the task (the three sources):

* ``lenient`` (40 users): accept every right answer and, per task, 35-65 % of the wrong ones
  (a draft is enough for them);
* ``neutral`` (40): accept exactly the right answers;
* ``strict`` (40): accept 70-90 % of the right answers, per task (they also want the form);
* ``new`` (40): neutral users who never send feedback.

Each user first sends ``F`` labelled requests (prompts drawn from one half of the data, routed
by the global router, labels drawn from their acceptance), then the personal offset is
estimated exactly as the gateway does (``personal/estimator.py``: prior strength 20, cap 1.0)
and applied by the learned strategy's own ``choose`` on 400 prompts of the other half. The
table gives, per group and ``F``, the mean acceptance (expected, per request) and the cost per
1,000 requests of the global router and of the personalised one; ``new`` users must come out
identical. Also the decision CPU time of the learned plan with a personal offset (p50).

Then cost at EQUAL acceptance (after 200 labels per user): the global router retuned on its
``quality_target`` (0.80-1.00, interpolated) (a) to one target matching the whole population's
personalised acceptance, and (b) per group, matching each group's (an oracle that knows the
groups); the saving column is the personalised router's against (b).

Run: PYTHONPATH=src python3 benchmarks/personalised_routing.py --plot docs/personalised-routing.png
(data from ``MODELMIX_ROUTING_DATA`` when set, else ``../shared/data/routing``)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmix.personal.estimator import estimate, shifted
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.types import ChatRequest

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing",
    )
)
MODELS = ["llama-3.1-8b-instruct", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022"]
TASKS = ["gsm8k", "math", "cruxeval"]
FEEDBACK = [0, 5, 10, 20, 50, 100, 200]
PRIOR, CAP = 20.0, 1.0
EVAL_PROMPTS = 400


@dataclass
class Item:
    task: int
    p: list[float]  # the global router's P(good) per model
    cost: list[float]  # real USD per model (its real token counts, list prices)
    right: list[bool]


@dataclass
class User:
    group: str
    #: P(accept | right), P(accept | wrong), per task
    accept: list[tuple[float, float]] = field(default_factory=list)

    def p_accept(self, item: Item, model: int) -> float:
        yes, no = self.accept[item.task]
        return yes if item.right[model] else no


def load_items(strategy: LearnedStrategy, prices: dict[str, tuple[float, float]]) -> list[Item]:
    items = []
    with open(DATA / "zeroeval-dev.jsonl") as f:
        for line in f:
            r = json.loads(line)
            task = next(i for i, t in enumerate(TASKS) if r["category"].startswith(t))
            p, _, _ = strategy.predict(r["prompt"])
            out = [r["outcomes"][m] for m in MODELS]
            cost = [
                o["prompt_tokens"] * prices[m][0] + o["completion_tokens"] * prices[m][1]
                for m, o in zip(MODELS, out, strict=True)
            ]
            items.append(Item(task, p, cost, [o["score"] >= 0.5 for o in out]))
    return items


def population(rng: random.Random) -> list[User]:
    users = []
    for _ in range(40):
        users.append(User("lenient", [(1.0, rng.uniform(0.35, 0.65)) for _ in TASKS]))
        users.append(User("neutral", [(1.0, 0.0)] * len(TASKS)))
        users.append(User("strict", [(rng.uniform(0.7, 0.9), 0.0) for _ in TASKS]))
        users.append(User("new", [(1.0, 0.0)] * len(TASKS)))
    return users


def serve(
    strategy: LearnedStrategy, user: User, items: list[Item], offset: float
) -> tuple[float, float]:
    """(mean acceptance, cost per 1,000 requests) of ``items`` routed with ``offset``."""
    accepted = cost = 0.0
    eligible = [True] * len(MODELS)
    for item in items:
        m = strategy.choose(shifted(item.p, offset), item.cost, eligible)
        accepted += user.p_accept(item, m)
        cost += item.cost[m]
    return accepted / len(items), 1000.0 * cost / len(items)


def learn(
    strategy: LearnedStrategy, user: User, items: list[Item], n: int, rng: random.Random
) -> float:
    """The user's offset after ``n`` labelled requests routed by the global router."""
    if user.group == "new" or n == 0:
        return 0.0
    eligible = [True] * len(MODELS)
    pairs = []
    for item in rng.sample(items, n):
        m = strategy.choose(item.p, item.cost, eligible)
        pairs.append((item.p[m], 1.0 if rng.random() < user.p_accept(item, m) else 0.0))
    return estimate("user", pairs, PRIOR, CAP).offset


def decision_us(strategy: LearnedStrategy) -> float:
    """p50 CPU microseconds of the learned plan's first step with a personal offset."""
    req = ChatRequest(model="r", messages=[{"role": "user", "content": "What is 17 times 23?"}])
    times = []
    for i in range(2000):
        needs = needs_of(req, personal=("team:x", 0.5))
        started = time.process_time_ns()
        next(strategy.plan(req, needs, {}))
        times.append((time.process_time_ns() - started) / 1000.0)
        if i == 0:
            times.clear()  # the first plan counts the prompt's tokens (cached after)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plot", default=None)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    prices_doc = json.loads((DATA / "models-zeroeval.json").read_text())
    prices = {
        m: (prices_doc[m]["input_per_mtok"] / 1e6, prices_doc[m]["output_per_mtok"] / 1e6)
        for m in MODELS
    }
    profiles = {"llama-3.1-8b-instruct": 0.568, "gpt-4o-mini-2024-07-18": 0.789}
    profiles["claude-3-5-sonnet-20241022"] = 0.84
    strategy = LearnedStrategy(
        "r", MODELS, load_artifact(), quality_target=0.95, profiles=profiles, prices=prices
    )
    rng = random.Random(args.seed)
    items = load_items(strategy, prices)
    rng.shuffle(items)
    half = len(items) // 2
    train, test = items[:half], items[half:]
    users = population(rng)
    groups = ["lenient", "neutral", "strict", "new"]
    curve: dict[str, list[tuple[float, float, float, float]]] = {g: [] for g in groups}
    print(f"{len(items)} prompts, {len(users)} users; acceptance and USD per 1k requests")
    print(
        f"{'F':>4} {'group':8} {'acc global':>10} {'acc pers.':>10} {'$ global':>9} "
        f"{'$ pers.':>9} {'offset':>7}"
    )
    for n in FEEDBACK:
        stats: dict[str, list[tuple[float, float, float, float, float]]] = {g: [] for g in groups}
        for user in users:
            evaluation = rng.sample(test, EVAL_PROMPTS)
            d = learn(strategy, user, train, n, rng)
            ag, cg = serve(strategy, user, evaluation, 0.0)
            ap, cp = serve(strategy, user, evaluation, d)
            stats[user.group].append((ag, ap, cg, cp, d))
        for g in groups:
            mean = [statistics.fmean(col) for col in zip(*stats[g], strict=True)]
            curve[g].append((mean[0], mean[1], mean[2], mean[3]))
            print(
                f"{n:>4} {g:8} {mean[0]:>10.3f} {mean[1]:>10.3f} {mean[2]:>9.3f} "
                f"{mean[3]:>9.3f} {mean[4]:>+7.3f}"
            )
    print(f"decision CPU p50 with a personal offset: {decision_us(strategy):.0f} us")
    if args.plot:
        plot(curve, args.plot)
    equal_acceptance(strategy, profiles, prices, users, train, test, rng)


#: Quality targets of the retuned global router (the frontier it can reach).
TARGETS = [round(0.80 + 0.005 * i, 3) for i in range(41)]
EQUAL_AT = 200


def _at(xs: list[float], ys: list[float], x: float) -> float | None:
    """``ys`` linearly interpolated at ``x`` along ``xs`` (sorted by x; None: out of range)."""
    pts = sorted(zip(xs, ys, strict=True))
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def equal_acceptance(
    strategy: LearnedStrategy,
    profiles: dict[str, float],
    prices: dict[str, tuple[float, float]],
    users: list[User],
    train: list[Item],
    test: list[Item],
    rng: random.Random,
) -> None:
    """Cost at EQUAL acceptance: the personalised router (after ``EQUAL_AT`` labels per user)
    against the global router retuned (its ``quality_target``) to reach the same acceptance:
    (a) one target for everyone, matching the whole population's mean acceptance; (b) one
    target per group, matching that group's (an oracle that knows every user's group)."""
    art = strategy.artifact
    routers = {
        t: LearnedStrategy("r", MODELS, art, quality_target=t, profiles=profiles, prices=prices)
        for t in TARGETS
    }
    groups = ["lenient", "neutral", "strict", "new"]
    per_user = []
    for user in users:
        evaluation = rng.sample(test, EVAL_PROMPTS)
        d = learn(strategy, user, train, EQUAL_AT, rng)
        pers = serve(strategy, user, evaluation, d)
        frontier = [serve(routers[t], user, evaluation, 0.0) for t in TARGETS]
        per_user.append((user.group, pers, frontier))

    def mean_of(rows: list[tuple[str, tuple[float, float], list[tuple[float, float]]]]) -> Any:
        pa = statistics.fmean(r[1][0] for r in rows)
        pc = statistics.fmean(r[1][1] for r in rows)
        fa = [statistics.fmean(r[2][i][0] for r in rows) for i in range(len(TARGETS))]
        fc = [statistics.fmean(r[2][i][1] for r in rows) for i in range(len(TARGETS))]
        return pa, pc, fa, fc

    pa_all, _, fa_all, _ = mean_of(per_user)
    # (a) one global target: the whole population's acceptance equals the personalised one's
    t_one = _at(fa_all, TARGETS, pa_all)
    print(
        f"\nEqual acceptance after {EQUAL_AT} labels per user (USD per 1k requests); "
        f"global retuned to one target {t_one if t_one is None else round(t_one, 4)} "
        f"(population acceptance {pa_all:.3f}) and per group"
    )
    print(
        f"{'group':8} {'acc pers.':>9} {'$ pers.':>8} | {'acc one-t':>9} {'$ one-t':>8} | "
        f"{'target g':>8} {'$ at =acc':>9} {'saving':>7}"
    )
    for g in [*groups, "all"]:
        rows = [r for r in per_user if r[0] == g or g == "all"]
        pa, pc, fa, fc = mean_of(rows)
        one_a = _at(TARGETS, fa, t_one) if t_one is not None else None
        one_c = _at(TARGETS, fc, t_one) if t_one is not None else None
        t_g = _at(fa, TARGETS, pa)
        c_g = _at(TARGETS, fc, t_g) if t_g is not None else None
        saving = f"{1 - pc / c_g:+.1%}" if c_g else "n/a"
        print(
            f"{g:8} {pa:>9.3f} {pc:>8.3f} | {_fmt(one_a):>9} {_fmt(one_c):>8} | "
            f"{_fmt(t_g):>8} {_fmt(c_g):>9} {saving:>7}"
        )


def _fmt(x: float | None) -> str:
    return "out" if x is None else f"{x:.3f}"


def plot(curve: dict[str, list[tuple[float, float, float, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"lenient": "tab:green", "neutral": "tab:blue", "strict": "tab:red", "new": "grey"}
    x = FEEDBACK
    for g, points in curve.items():
        c = colours[g]
        ax_acc.plot(x, [p[1] for p in points], "-o", color=c, label=f"{g}: personalised")
        ax_acc.plot(x, [p[0] for p in points], "--", color=c, alpha=0.6, label=f"{g}: global")
        ax_cost.plot(x, [p[3] for p in points], "-o", color=c, label=f"{g}: personalised")
        ax_cost.plot(x, [p[2] for p in points], "--", color=c, alpha=0.6, label=f"{g}: global")
    for ax, title in ((ax_acc, "acceptance rate"), (ax_cost, "USD per 1,000 requests")):
        ax.set_xscale("symlog", linthresh=5)
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in x])
        ax.set_xlabel("labelled requests per user (feedback count)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_cost.legend(fontsize=7, ncol=2)
    fig.suptitle("Personalised routing: learning curve per user group (dashed: global router)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
