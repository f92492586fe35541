from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from modelmix.budgets import RateLimit
from modelmix.ledger.db import Location
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.schema import SCHEMA_VERSION, connect, ensure_schema


def test_create_with_settings_round_trips(ledger_at: Location) -> None:
    store = KeyStore(ledger_at)
    info, key = store.create(
        "svc",
        owner="ana@example.com",
        team="search",
        tags=["prod", "project:x", "prod"],
        allowed_models=["cheap", "gpt-4o*"],
        budgets=[{"kind": "hard", "period": "month", "limit_usd": "100"}],
        rate_limit={"rpm": 60, "tpm": 10000},
    )
    assert info.tags == ("prod", "project:x")
    assert info.budgets[0].scope == "key" and info.budgets[0].subject == info.id
    assert info.budgets[0].limit_usd == Decimal("100")
    assert info.rate_limit == RateLimit(60, 10000)
    assert store.verify(key) == info
    assert store.by_id(info.id) == info
    assert KeyStore(ledger_at).get("svc") == info  # persisted
    assert info.allows("cheap") and info.allows("gpt-4o-mini") and not info.allows("opus")
    bare, _ = store.create("bare")
    assert bare.allows("anything") and bare.rate_limit is None and bare.budgets == ()
    assert [b.subject for b in store.active_budgets()] == [info.id]
    d = info.to_dict()
    assert d["budgets"] == [{"kind": "hard", "period": "month", "limit_usd": "100"}]
    assert "key" not in d and "key_hash" not in d
    for bad in (
        {"budgets": [{"limit_usd": "-3"}]},
        {"rate_limit": {"rpm": 0}},
        {"rate_limit": {"rps": 1}},
        {"tags": [""]},
    ):
        with pytest.raises(ValueError):
            store.create("bad", **bad)  # type: ignore[arg-type]
    assert store.get("bad") is None


def test_update_changes_settings_at_once(ledger_at: Location) -> None:
    store = KeyStore(ledger_at)
    info, key = store.create("svc", team="a", tags=["t"], rate_limit={"rpm": 5})
    assert store.verify(key) == info
    new = store.update("svc", team="b", budgets=[{"limit_usd": 1, "period": "day"}])
    assert new.team == "b" and new.tags == ("t",) and new.rate_limit == RateLimit(5)
    assert new.budgets[0].period == "day" and new.updated_at is not None
    assert store.verify(key) == new  # the cache was dropped
    assert store.by_id(info.id) == new
    cleared = store.update(info.id, team="", tags=[], budgets=[], rate_limit={})
    assert (cleared.team, cleared.tags, cleared.budgets, cleared.rate_limit) == (None, (), (), None)
    store.create("other")
    with pytest.raises(ValueError):
        store.update("svc", name="other")
    with pytest.raises(KeyError):
        store.update("nobody", team="x")
    store.revoke("svc")
    with pytest.raises(KeyError):
        store.update(info.id, team="x")


def test_rotation_keeps_the_id_and_retires_the_old_secret(ledger_at: Location) -> None:
    store = KeyStore(ledger_at)
    info, old = store.create("svc", team="a", budgets=[{"limit_usd": 5}])
    assert store.verify(old) is not None
    rotated, new = store.rotate("svc")
    assert new != old and rotated.id == info.id and rotated.prefix == new[:8]
    assert rotated.team == "a" and rotated.budgets == info.budgets
    assert store.verify(old) is None
    assert store.verify(new) == rotated
    with pytest.raises(KeyError):
        store.rotate("nobody")
    store.revoke(info.id)
    assert store.verify(new) is None and store.by_id(info.id) is None
    with pytest.raises(KeyError):
        store.rotate(info.id)


def test_a_version_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (1);
        CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at REAL NOT NULL,
            revoked_at REAL);
        INSERT INTO api_keys VALUES ('key_old', 'legacy', 'abc', 'mm-abcde', 1.0, NULL);
        CREATE TABLE requests (id TEXT PRIMARY KEY, started_at REAL NOT NULL, api TEXT NOT NULL,
            requested_model TEXT NOT NULL, route TEXT, stream INTEGER NOT NULL, key_id TEXT,
            config_hash TEXT NOT NULL, decision TEXT NOT NULL, status TEXT NOT NULL,
            http_status INTEGER NOT NULL, error TEXT, final_model TEXT, latency_ms REAL,
            ttft_ms REAL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
            cost_usd TEXT NOT NULL, unpriced INTEGER NOT NULL, n_attempts INTEGER NOT NULL,
            metadata TEXT NOT NULL);
        """
    )
    conn.commit()
    conn.close()
    store = KeyStore(db)
    legacy = store.get("legacy")
    assert legacy is not None and legacy.tags == () and legacy.budgets == ()
    assert store.update("legacy", team="t").team == "t"
    c = connect(str(db))
    ensure_schema(c)  # idempotent
    assert c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    cols = {r[1] for r in c.execute("PRAGMA table_info(requests)")}
    assert {"team", "tags"} <= cols
    c.close()


def test_a_version_2_ledger_gains_cost_confidence(tmp_path: Path) -> None:
    """Rows written before schema 3: unpriced ones become ``unknown``, others ``exact``."""
    db = tmp_path / "ledger.db"
    c = connect(str(db))
    ensure_schema(c)
    c.execute("ALTER TABLE requests DROP COLUMN cost_confidence")
    c.execute("UPDATE schema_version SET version = 2")
    for rid, unpriced in (("a", 0), ("b", 1)):
        c.execute(
            "INSERT INTO requests (id, started_at, api, requested_model, stream, config_hash, "
            "decision, status, http_status, prompt_tokens, completion_tokens, cached_tokens, "
            "reasoning_tokens, cost_usd, unpriced, n_attempts, metadata) "
            "VALUES (?, 1.0, 'openai', 'm', 0, 'h', '{}', 'ok', 200, 1, 1, 0, 0, '0.1', ?, 1, "
            "'{}')",
            (rid, unpriced),
        )
    c.close()
    from modelmix.ledger.queries import recent_requests, totals

    # a read-only report on the old file migrates it first (adding a column is instant)
    assert totals(db)["requests"] == 2
    conf = {r["id"]: r["cost_confidence"] for r in recent_requests(db)}
    assert conf == {"a": "exact", "b": "unknown"}
