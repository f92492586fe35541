"""The ledger's tables, in SQL meant to stay portable (a Postgres backend can reuse it).

Conventions: ids are TEXT, timestamps REAL unix seconds, money TEXT holding an exact decimal
string (Postgres will use NUMERIC), JSON documents TEXT, booleans INTEGER 0/1.
"""

from __future__ import annotations

import sqlite3

#: 1: requests, attempts, api_keys. 2: api_keys gain owner, team, tags, allowed models,
#: budgets, rate limits and updated_at; requests gain team and tags (spend attribution).
#: 3: requests gain cost_confidence (exact / estimated / unknown).
SCHEMA_VERSION = 3

REQUEST_COLUMNS = (
    "id",
    "started_at",
    "api",
    "requested_model",
    "route",
    "stream",
    "key_id",
    "config_hash",
    "decision",
    "status",
    "http_status",
    "error",
    "final_model",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced",
    "n_attempts",
    "metadata",
    "team",
    "tags",
    "cost_confidence",
    "policy_version",
)

ATTEMPT_COLUMNS = (
    "request_id",
    "seq",
    "model",
    "deployment",
    "provider",
    "upstream_model",
    "started_at",
    "latency_ms",
    "ttft_ms",
    "status",
    "http_status",
    "error_kind",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_source",
)

DDL = (
    """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    api TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    route TEXT,
    stream INTEGER NOT NULL,
    key_id TEXT,
    config_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    error TEXT,
    final_model TEXT,
    latency_ms REAL,
    ttft_ms REAL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    unpriced INTEGER NOT NULL,
    n_attempts INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    team TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    cost_confidence TEXT NOT NULL DEFAULT 'exact'
)""",
    "CREATE INDEX IF NOT EXISTS requests_started_at ON requests (started_at)",
    "CREATE INDEX IF NOT EXISTS requests_key_id ON requests (key_id)",
    "CREATE INDEX IF NOT EXISTS requests_final_model ON requests (final_model)",
    "CREATE INDEX IF NOT EXISTS requests_route ON requests (route)",
    """CREATE TABLE IF NOT EXISTS attempts (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    model TEXT NOT NULL,
    deployment TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    started_at REAL NOT NULL,
    latency_ms REAL,
    ttft_ms REAL,
    status TEXT NOT NULL,
    http_status INTEGER,
    error_kind TEXT,
    error TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT,
    price_source TEXT,
    PRIMARY KEY (request_id, seq)
)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    owner TEXT,
    team TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    allowed_models TEXT NOT NULL DEFAULT '[]',
    budgets TEXT NOT NULL DEFAULT '[]',
    rate_limits TEXT NOT NULL DEFAULT '{}',
    updated_at REAL
)""",
    "CREATE INDEX IF NOT EXISTS api_keys_name ON api_keys (name)",
)

#: Columns added after version 1: (table, column, declaration). ``ensure_schema`` adds any that
#: an older database lacks (``ALTER TABLE ... ADD COLUMN``: instant in SQLite, no rewrite).
ADDED_COLUMNS = (
    ("requests", "team", "TEXT"),
    ("requests", "tags", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "owner", "TEXT"),
    ("api_keys", "team", "TEXT"),
    ("api_keys", "tags", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "allowed_models", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "budgets", "TEXT NOT NULL DEFAULT '[]'"),
    ("api_keys", "rate_limits", "TEXT NOT NULL DEFAULT '{}'"),
    ("api_keys", "updated_at", "REAL"),
    ("requests", "cost_confidence", "TEXT NOT NULL DEFAULT 'exact'"),
    # the routing policy version that served the request (quality loop: canary, rollback)
    ("requests", "policy_version", "TEXT"),
    # tags a key may set on requests and have counted against tag budgets (issue 14)
    ("api_keys", "allowed_tags", "TEXT NOT NULL DEFAULT '[]'"),
)

#: Run once right after a column is added to an existing database (backfill).
BACKFILL = {
    ("requests", "cost_confidence"): (
        "UPDATE requests SET cost_confidence = 'unknown' WHERE unpriced = 1"
    ),
}

#: Indexes on added columns: created once the columns exist.
LATE_DDL = (
    "CREATE INDEX IF NOT EXISTS requests_team ON requests (team)",
    "CREATE INDEX IF NOT EXISTS requests_policy ON requests (policy_version, started_at)",
)


class SchemaError(RuntimeError):
    """The database was written by a newer modelmix, or is not a modelmix ledger."""


def connect(path: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-write connection in autocommit mode (transactions are explicit), WAL journal."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The database's schema version (None: not a modelmix ledger yet)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return None
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(version) if version is not None else None


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create every table and index if missing; refuse a database from a newer version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaError(
                f"ledger schema version {version} is newer than this modelmix "
                f"(knows up to {SCHEMA_VERSION}); upgrade modelmix"
            )
        for statement in DDL:
            conn.execute(statement)
        _add_missing_columns(conn)
        for statement in LATE_DDL:
            conn.execute(statement)
        if version is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Migrate an older database in place (idempotent: only missing columns are added)."""
    existing: dict[str, set[str]] = {}
    for table, column, decl in ADDED_COLUMNS:
        if table not in existing:
            existing[table] = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in existing[table]:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            existing[table].add(column)
            backfill = BACKFILL.get((table, column))
            if backfill is not None:
                conn.execute(backfill)
