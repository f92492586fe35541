"""The cost-quality plot of a routing benchmark (matplotlib: the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelmix.bench import metrics


def plot(summary: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bc = summary["best_cost"]
    runs = summary["runs"]
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    singles = [r for r in runs if r["family"] == "single"]
    ax.scatter(
        [r["cost_share"] for r in singles],
        [r["quality"] for r in singles],
        c="grey",
        s=18,
        label="single models",
        zorder=3,
    )
    for r in singles:
        ax.annotate(
            r["router"],
            (r["cost_share"], r["quality"]),
            fontsize=6,
            color="grey",
            xytext=(3, -3),
            textcoords="offset points",
        )
    styles = {
        "single-model hull": ("grey", "--"),
        "category-prior": ("tab:orange", "-"),
        "learned": ("tab:blue", "-"),
        "profile": ("tab:cyan", ":"),
        "cascade": ("tab:red", "-"),
        "knn": ("tab:green", ":"),
        "knn+heads": ("tab:green", "-"),
        "cluster": ("tab:olive", "-."),
    }
    for name, (color, ls) in styles.items():
        curve = summary["curves"].get(name)
        if not curve:
            continue
        hull = curve["frontier"]
        ax.plot(
            [c / bc for c, _ in hull],
            [q for _, q in hull],
            ls,
            color=color,
            lw=1.8,
            label=f"{name} (AIQ {curve['aiq']:.3f})",
        )
        pts = [r for r in runs if r["router"] == name]
        ax.scatter([r["cost_share"] for r in pts], [r["quality"] for r in pts], color=color, s=10)
    every = [(r["cost"], r["quality"]) for r in runs if r["family"] != "oracle"]
    pareto = metrics.frontier(every)
    ax.plot(
        [c / bc for c, _ in pareto],
        [q for _, q in pareto],
        color="black",
        lw=0.8,
        alpha=0.6,
        label="Pareto frontier (all routers)",
    )
    oracle = [r for r in runs if r["family"] == "oracle"]
    if oracle:
        ax.scatter(
            [oracle[0]["cost_share"]],
            [oracle[0]["quality"]],
            marker="*",
            s=120,
            color="gold",
            edgecolor="black",
            label="oracle",
            zorder=4,
        )
    bq = summary["best_quality"]
    ax.axhline(bq, color="green", lw=0.6, ls=":", label=f"best single ({summary['best_model']})")
    ax.axhline(0.95 * bq, color="green", lw=0.6, ls="-.", alpha=0.5, label="95% of best")
    ax.set_xscale("log")
    ax.set_xlabel("cost, share of always-best (log scale)")
    ax.set_ylabel("mean quality (held-out prompts)")
    ax.set_title(f"Routing cost-quality ({summary['prompts']} prompts)")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
