"""The quality loop's tables, in the ledger's database, with their own version.

They sit beside ``requests`` and ``attempts`` (joined on request ids) but are migrated on their
own (``quality_schema_version``), so the ledger's schema and this one evolve independently.
Same conventions as ``ledger/schema.py``: TEXT ids, REAL unix seconds, money as exact decimal
TEXT, JSON as TEXT.

* ``eval_runs`` / ``eval_results`` / ``eval_cells``: eval runs (also golden-set probe rounds and
  shadow comparisons), one result per (run, item, model) so a rerun skips what is done, and the
  matrix (model x task: mean quality with its interval, cost, latency percentiles).
* ``feedback``: scores and labels clients sent for their requests (``POST /v1/feedback``).
* ``samples``: prompts and answers of live requests, when capture is on (replay, retraining).
* ``judgements``: an LLM judge's score of a live answer (online judge, shadow comparisons).
* ``policy_versions`` / ``policy_events`` / ``policy_state``: every routing config, what was
  deployed when, and what serves now (live version, canary).
* ``alarms``: regression alarms raised and cleared.
"""

from __future__ import annotations

import sqlite3

from modelmix.ledger.schema import SchemaError

QUALITY_SCHEMA_VERSION = 1

DDL = (
    "CREATE TABLE IF NOT EXISTS quality_schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS eval_runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    dataset TEXT,
    dataset_hash TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    settings TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS eval_results (
    run_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    created_at REAL NOT NULL,
    score REAL NOT NULL,
    scorer TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    answer TEXT,
    error TEXT,
    cost_usd TEXT,
    latency_ms REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    refusal INTEGER NOT NULL DEFAULT 0,
    system_fingerprint TEXT,
    request_id TEXT,
    prompt TEXT,
    PRIMARY KEY (run_id, item_id, model)
)""",
    "CREATE INDEX IF NOT EXISTS eval_results_model ON eval_results (model, created_at)",
    """CREATE TABLE IF NOT EXISTS eval_cells (
    run_id TEXT NOT NULL,
    model TEXT NOT NULL,
    task TEXT NOT NULL,
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    method TEXT NOT NULL,
    errors INTEGER NOT NULL,
    cost_mean TEXT,
    cost_total TEXT,
    latency_p50 REAL,
    latency_p95 REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, model, task)
)""",
    """CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    key_id TEXT,
    score REAL,
    label TEXT,
    comment TEXT,
    created_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id)",
    """CREATE TABLE IF NOT EXISTS samples (
    request_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    route TEXT,
    model TEXT,
    policy_version TEXT,
    messages TEXT NOT NULL,
    answer TEXT,
    completion_tokens INTEGER,
    refusal INTEGER NOT NULL DEFAULT 0,
    system_fingerprint TEXT
)""",
    "CREATE INDEX IF NOT EXISTS samples_model ON samples (model, created_at)",
    """CREATE TABLE IF NOT EXISTS judgements (
    request_id TEXT NOT NULL,
    model TEXT NOT NULL,
    source TEXT NOT NULL,
    judge TEXT NOT NULL,
    score REAL NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (request_id, model, source)
)""",
    "CREATE INDEX IF NOT EXISTS judgements_time ON judgements (created_at)",
    """CREATE TABLE IF NOT EXISTS policy_versions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    document TEXT NOT NULL,
    parent TEXT
)""",
    """CREATE TABLE IF NOT EXISTS policy_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    version TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
)""",
    """CREATE TABLE IF NOT EXISTS policy_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    live TEXT,
    file_version TEXT,
    canary TEXT,
    canary_share REAL,
    canary_sticky TEXT,
    canary_started_at REAL,
    canary_settings TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    cleared_at REAL
)""",
)


def ensure_quality_schema(conn: sqlite3.Connection) -> None:
    """Create the quality tables if missing; refuse a database from a newer modelmix."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quality_schema_version'"
        ).fetchone()
        version = None
        if row is not None:
            version = conn.execute("SELECT MAX(version) FROM quality_schema_version").fetchone()[0]
        if version is not None and version > QUALITY_SCHEMA_VERSION:
            raise SchemaError(
                f"quality schema version {version} is newer than this modelmix "
                f"(knows up to {QUALITY_SCHEMA_VERSION}); upgrade modelmix"
            )
        for statement in DDL:
            conn.execute(statement)
        if version is None:
            conn.execute(
                "INSERT INTO quality_schema_version (version) VALUES (?)",
                (QUALITY_SCHEMA_VERSION,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
