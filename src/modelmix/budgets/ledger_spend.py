"""Budget spend so far, from the ledger: what a restarted gateway starts its counters from.

One read-only query per call over the requests in the oldest window asked for (indexed on
``started_at``), summed exactly in Python. Runs at start-up, and once for a budget that
appears while the gateway runs; never per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import orjson

from modelmix.budgets.definitions import BudgetSpec
from modelmix.budgets.enforcer import SpendLoader
from modelmix.budgets.store import CounterKey
from modelmix.ledger.db import Database, Location, is_postgres

__all__ = ["ledger_spend", "ledger_spend_loader", "request_tags"]


def request_tags(
    key_tags: Sequence[str], metadata: dict[str, str], user: str | None = None
) -> tuple[str, ...]:
    """The tags a request's spend is attributed to: the key's tags, ``name:value`` for each
    request metadata item (OpenAI/Anthropic ``metadata``, ``x-modelmix-tag-<name>`` headers),
    the comma-separated values of a ``tags`` metadata item as plain tags, and ``user:<id>``
    for the OpenAI ``user`` field. Order kept, duplicates dropped."""
    out: list[str] = list(key_tags)
    for name, value in metadata.items():
        if name == "tags":
            out += [t.strip() for t in value.split(",") if t.strip()]
        else:
            out.append(f"{name}:{value}")
    if user:
        out.append(f"user:{user}")
    return tuple(dict.fromkeys(out))


def ledger_spend(
    path: Location, specs: Sequence[BudgetSpec], now: float
) -> dict[CounterKey, Decimal]:
    """Spend per counter of ``specs``' current windows (missing ledger: nothing spent)."""
    windows: list[tuple[BudgetSpec, CounterKey]] = []
    for spec in specs:
        start, end = spec.window(now)
        windows.append((spec, (spec.scope, spec.subject, start, end)))
    out: dict[CounterKey, Decimal] = {key: Decimal(0) for _, key in windows}
    postgres = is_postgres(path)
    if not windows or not (postgres or Path(path).is_file()):
        return out
    since = min(key[2] for _, key in windows)
    by_key: dict[str, list[CounterKey]] = {}
    by_team: dict[str, list[CounterKey]] = {}
    by_tag: dict[str, list[CounterKey]] = {}
    every: list[CounterKey] = []
    for spec, key in windows:
        if spec.scope == "global":
            every.append(key)
        else:
            index = {"key": by_key, "team": by_team, "tag": by_tag}[spec.scope]
            index.setdefault(spec.subject, []).append(key)
    conn = _open_read(path)
    try:
        rows = conn.execute(
            "SELECT started_at, cost_usd, key_id, team, tags FROM requests "
            "WHERE started_at >= ? AND cost_usd != '0'",
            (since,),
        )
        for started_at, cost_text, key_id, team, tags_json in rows:
            cost = Decimal(cost_text)
            hits = list(every)
            if key_id is not None:
                hits += by_key.get(key_id, ())
            if team is not None:
                hits += by_team.get(team, ())
            if by_tag and tags_json and tags_json != "[]":
                for tag in set(orjson.loads(tags_json)):
                    hits += by_tag.get(tag, ())
            for key in set(hits):
                if key[2] <= started_at < key[3]:
                    out[key] += cost
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        # an old ledger nobody has migrated yet: no team/tag attribution to read
    finally:
        conn.close()
    return out


def _open_read(path: Location) -> Database:
    if is_postgres(path):
        from modelmix.ledger.pg_schema import open_pg

        return open_pg(str(path))
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def ledger_spend_loader(path: Location) -> SpendLoader:
    """A ``SpendLoader`` for ``Budgets`` reading the ledger at ``path``."""

    def load(specs: Sequence[BudgetSpec], now: float) -> dict[CounterKey, Decimal]:
        return ledger_spend(path, specs, now)

    return load
