"""``modelmix report --by route``: the routes that explored (issue 15, item 4), per model the
requests explored on it and the acceptance its labels show (feedback, else the judge's score:
the posteriors' evidence, ``quality/explore.py``). Nothing when no route explored."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from rich.table import Table

from modelmix.cli.quality_options import console
from modelmix.ledger.db import Location, db_errors
from modelmix.ledger.opening import open_quality_db
from modelmix.quality.explore import arm_labels

__all__ = ["exploration_rows", "exploration_table", "print_exploration"]

#: How an explored request's decision starts its note in the ledger (orjson, no spaces).
_MARK = '%"explore":{"candidate":"%'


def exploration_rows(location: Location) -> list[dict[str, Any]]:
    """Per (route, model) of the routes that explored: explored requests, labels, acceptance."""
    conn: Any = open_quality_db(location)
    try:
        cur = conn.execute("SELECT route, decision FROM requests WHERE decision LIKE ?", (_MARK,))
        explored: Counter[tuple[str, str]] = Counter()
        for route, decision in cur.fetchall():
            note = orjson.loads(decision).get("explore") or {}
            if note.get("candidate"):
                explored[(str(route), str(note["candidate"]))] += 1
        if not explored:
            return []
        routes = {r for r, _ in explored}
        labels = {k: v for k, v in arm_labels(conn, 0.0).items() if k[0] in routes}
    except db_errors():
        return []
    finally:
        conn.close()
    out = []
    for route, model in sorted(set(explored) | set(labels)):
        s, n = labels.get((route, model), (0.0, 0))
        out.append(
            {
                "route": route,
                "model": model,
                "explored": explored.get((route, model), 0),
                "labelled": n,
                "acceptance": s / n if n else None,
            }
        )
    return out


def exploration_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="exploration by route (acceptance from labels)")
    for name in ("route", "model", "explored", "labelled", "acceptance"):
        table.add_column(name, justify="left" if name in ("route", "model") else "right")
    for r in rows:
        acc = "-" if r["acceptance"] is None else f"{r['acceptance']:.3f}"
        table.add_row(r["route"], r["model"], str(r["explored"]), str(r["labelled"]), acc)
    return table


def print_exploration(location: Location) -> None:
    rows = exploration_rows(location)
    if rows:
        console().print(exploration_table(rows))
