"""The tables ``modelmix bench routing`` prints (rich), from ``routing.summary``'s dict."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from modelmix.routing.learned.safety import TOLERANCE

#: Knob settings shown without ``--all-knobs``.
SHOWN = {
    "quality_target=0.85",
    "quality_target=0.9",
    "quality_target=0.95",
    "quality_target=0.98",
    "quality_target=0.99",
    "quality_target=1.0",
    "need=2",
    "t=0.60",
    "t=0.80",
    "t=0.90",
    "t=0.96",
    "always",
    "uniform",
    "per-prompt",
}
#: A realised share within this many points of the target keeps the promise.
TARGET_TOLERANCE = 100 * TOLERANCE


def fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:.1f}%" if pct else f"{x:.3f}"


def _pts(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}"


def runs_table(s: dict[str, Any], title: str, all_knobs: bool) -> Table:
    table = Table(title=title)
    cols: tuple[str, ...] = (
        "router",
        "knob",
        "quality",
        "share of best q",
        "cost $",
        "share of best cost",
    )
    cols += ("hull q @ cost", "vs hull (pts)", "escalation", "calls/prompt", "harm")
    for col in cols:
        table.add_column(col, justify="left" if col in ("router", "knob", "harm") else "right")
    for r in s["runs"]:
        if not all_knobs and r["knob"] not in SHOWN:
            continue
        table.add_row(
            r["router"],
            r["knob"],
            fmt(r["quality"]),
            fmt(r["quality_share"], True),
            f"{r['cost']:.3f}",
            fmt(r["cost_share"], True),
            fmt(r["hull_quality"]),
            _pts(r["vs_hull"]) if r["family"] != "single" else "",
            fmt(r["escalation_rate"], True),
            f"{r['calls_per_prompt']:.2f}",
            f"< {r['dominated_by']}" if r["dominated_by"] else "",
        )
    return table


def curves_table(s: dict[str, Any]) -> Table:
    curves = Table(title="Cost-quality curves (frontier over knob settings)")
    cols = ("router", "AIQ", "cost share @ best q", "saving @ best q", "cost share @ 95%")
    for col in (*cols, "saving @ 95%"):
        curves.add_column(col, justify="left" if col == "router" else "right")
    for name, c in s["curves"].items():
        curves.add_row(
            name,
            fmt(c["aiq"]),
            fmt(c["cost_share_at_best"], True),
            fmt(c["saving_at_best"], True),
            fmt(c["cost_share_at_95"], True),
            fmt(c["saving_at_95"], True),
        )
    return curves


def harm_table(s: dict[str, Any]) -> Table:
    table = Table(
        title="Do no harm: settings a single model beats on both cost and quality "
        "(all settings / the quality_target ones a user asks for)"
    )
    cols = ("router", "settings", "dominated", "above best's cost", "targets")
    for col in (*cols, "targets dominated", "targets above best's cost", "examples"):
        table.add_column(col, justify="left" if col in ("router", "examples") else "right")
    for h in s["do_no_harm"]:
        table.add_row(
            h["router"],
            str(h["settings"]),
            str(h["dominated"]),
            str(h["above_best_cost"]),
            str(h["targets"]),
            str(h["targets_dominated"]),
            str(h["targets_above_best_cost"]),
            "; ".join(h["examples"]),
        )
    return table


def targets_table(s: dict[str, Any]) -> Table:
    table = Table(
        title="Requested quality_target vs realised share of best quality "
        f"(95% bootstrap interval over prompts; kept = within {TARGET_TOLERANCE} points)"
    )
    cols = ("router", "target", "realised", "interval", "gap (points)", "cost share")
    by_task = s.get("split") == "task"
    for col in (*cols, "unlike training", "kept", *(("worst held-out task",) * by_task)):
        table.add_column(col)
    for r in s["runs"]:
        if r["target"] is None or r["family"] not in ("learned", "cascade"):
            continue
        gap = (r["quality_share"] - r["target"]) * 100
        lo, hi = r["interval"] or (None, None)
        table.add_row(
            r["router"],
            f"{r['target']:.2f}",
            fmt(r["quality_share"], True),
            f"{fmt(lo, True)} .. {fmt(hi, True)}",
            f"{gap:+.1f}",
            fmt(r["cost_share"], True),
            fmt(r.get("unlike_training"), True),
            "yes" if abs(gap) <= TARGET_TOLERANCE else "NO",
            *((worst_task(r),) if by_task else ()),
        )
    return table


def worst_task(r: dict[str, Any]) -> str:
    """The held-out task whose realised share is lowest, and its gap to the target."""
    tasks = r.get("by_task") or {}
    if not tasks:
        return "-"
    task, share = min(tasks.items(), key=lambda kv: kv[1])
    return f"{task} {fmt(share, True)} ({(share - r['target']) * 100:+.1f})"


def two_model_table(s: dict[str, Any]) -> Table:
    two = Table(
        title="Two-model metrics (RouteLLM): APGR, and the share of strong-model calls "
        "needed for 50% / 80% of the quality gap"
    )
    for col in ("router", "APGR", "CPT(50%)", "CPT(80%)"):
        two.add_column(col)
    for name, v in s["two_model"].items():
        if isinstance(v, dict):
            two.add_row(name, fmt(v["apgr"]), fmt(v["cpt50"], True), fmt(v["cpt80"], True))
    return two


def _unlike(shares: dict[str, float]) -> str:
    """Per category (up to 8 named), then over all prompts."""
    per = {c: v for c, v in shares.items() if c != "all"}
    total = f"all {shares.get('all', 0.0) * 100:.1f}%"
    if len(per) <= 8:
        return ", ".join([*(f"{c} {v * 100:.1f}%" for c, v in per.items()), total])
    lo, hi = min(per.values()), max(per.values())
    return f"{total} ({len(per)} categories, from {lo * 100:.1f}% to {hi * 100:.1f}%)"


def print_report(console: Console, s: dict[str, Any], title: str, all_knobs: bool) -> None:
    console.print(runs_table(s, title, all_knobs))
    console.print(curves_table(s))
    console.print(harm_table(s))
    console.print(targets_table(s))
    unlike = s.get("unlike_training") or {}
    if unlike:
        console.print(
            f"Prompts the learned router found unlike its training prompts: {_unlike(unlike)}"
        )
    offered = s.get("blind_offered")
    if offered:
        per = ", ".join(f"{t}: {v[0]}/{v[1]}" for t, v in offered.items())
        console.print(
            "Folds whose do-no-harm choice (answer-blind cascade or one learned call, against "
            f"the single models) serves the answer-blind cascade, per quality_target: {per}"
        )
    unplaced = s.get("unplaced") or {}
    if unplaced:
        console.print(
            "Prompts the learned router could not place in a training category (a "
            f"quality_target route raises its willingness to pay): {_unlike(unplaced)}"
        )
    if "two_model" in s:
        console.print(two_model_table(s))
