"""Eval runs, results and matrix cells in the ledger database (``ledger/quality_schema.py``).

One result per (run, item, model): writing it again replaces it, and ``done`` tells a rerun
what to skip. Shadow comparisons and golden-set probe rounds are runs too (``kind``), so they
land in the same matrix.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from modelmix.ledger.db import Database, Location, prepare_location, upsert_sql
from modelmix.ledger.opening import open_quality_db

RUN_KINDS = ("eval", "probe", "shadow")


@dataclass(slots=True)
class ResultRow:
    run_id: str
    item_id: str
    model: str
    task: str
    score: float
    scorer: str
    created_at: float = 0.0
    detail: dict[str, Any] | None = None
    answer: str | None = None
    error: str | None = None
    cost_usd: Decimal | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    refusal: bool = False
    system_fingerprint: str | None = None
    request_id: str | None = None
    #: The prompt as the router sees it (``request_facts.prompt_text``): training
    #: a router from the ledger needs it.
    prompt: str | None = None


@dataclass(slots=True)
class RunInfo:
    id: str
    kind: str
    created_at: float
    updated_at: float
    dataset: str | None
    dataset_hash: str | None
    models: list[str]
    settings: dict[str, Any]
    status: str
    results: int = 0


@dataclass(slots=True)
class Cell:
    """One model x task cell of the matrix (task ``*``: every task of the run)."""

    run_id: str
    model: str
    task: str
    n: int
    mean: float
    lo: float
    hi: float
    method: str
    errors: int
    cost_mean: Decimal | None
    cost_total: Decimal | None
    latency_p50: float | None
    latency_p95: float | None


_RESULT_COLUMNS = (
    "run_id, item_id, model, task, created_at, score, scorer, detail, answer, error, cost_usd, "
    "latency_ms, prompt_tokens, completion_tokens, refusal, system_fingerprint, request_id, prompt"
)
#: Insert (or replace) one result; its parameters are ``result_values(row)``.
RESULT_SQL = upsert_sql(
    "eval_results",
    [c.strip() for c in _RESULT_COLUMNS.split(",")],
    ("run_id", "item_id", "model"),
)


def result_values(r: ResultRow) -> tuple[Any, ...]:
    return (
        r.run_id,
        r.item_id,
        r.model,
        r.task,
        r.created_at or time.time(),
        r.score,
        r.scorer,
        orjson.dumps(r.detail or {}).decode(),
        r.answer,
        r.error,
        None if r.cost_usd is None else format(r.cost_usd, "f"),
        r.latency_ms,
        r.prompt_tokens,
        r.completion_tokens,
        int(r.refusal),
        r.system_fingerprint,
        r.request_id,
        r.prompt,
    )


class EvalStore:
    """Reads and writes the eval tables through one connection (one thread at a time)."""

    def __init__(self, path: Location) -> None:
        prepare_location(path)
        self.path = str(path)
        self.conn: Database = open_quality_db(path, check_same_thread=False)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EvalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunInfo | None:
        row = self.conn.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM eval_results e WHERE e.run_id = r.id) AS results "
            "FROM eval_runs r WHERE id = ?",
            (run_id,),
        ).fetchone()
        return None if row is None else _run_info(row)

    def runs(self, kind: str | None = None, limit: int = 100) -> list[RunInfo]:
        sql = (
            "SELECT r.*, (SELECT COUNT(*) FROM eval_results e WHERE e.run_id = r.id) AS results "
            "FROM eval_runs r"
        )
        args: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        return [_run_info(r) for r in self.conn.execute(sql, args)]

    def open_run(
        self,
        run_id: str,
        *,
        kind: str,
        dataset: str | None,
        dataset_hash: str | None,
        models: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Create the run, or reopen it (models are merged). Raises ``ValueError`` when an
        existing run was made from a different dataset or is of another kind."""
        now = time.time()
        existing = self.run(run_id)
        if existing is not None:
            if existing.kind != kind:
                raise ValueError(f"run {run_id!r} is a {existing.kind} run, not {kind}")
            if dataset_hash and existing.dataset_hash and existing.dataset_hash != dataset_hash:
                raise ValueError(
                    f"run {run_id!r} was made from another dataset (hash "
                    f"{existing.dataset_hash}, this one {dataset_hash}); use a new run name"
                )
            merged = list(dict.fromkeys([*existing.models, *models]))
            self.conn.execute(
                "UPDATE eval_runs SET models = ?, status = 'running', updated_at = ? WHERE id = ?",
                (orjson.dumps(merged).decode(), now, run_id),
            )
        else:
            self.conn.execute(
                "INSERT INTO eval_runs (id, kind, created_at, updated_at, dataset, dataset_hash, "
                "models, settings, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (
                    run_id,
                    kind,
                    now,
                    now,
                    dataset,
                    dataset_hash,
                    orjson.dumps(list(models)).decode(),
                    orjson.dumps(settings or {}).decode(),
                ),
            )
        info = self.run(run_id)
        assert info is not None
        return info

    def finish_run(self, run_id: str, status: str = "done") -> None:
        self.conn.execute(
            "UPDATE eval_runs SET status = ?, updated_at = ? WHERE id = ?",
            (status, time.time(), run_id),
        )

    # -- results -----------------------------------------------------------------------------

    def done(self, run_id: str) -> set[tuple[str, str]]:
        """(item id, model) pairs that already have a result."""
        rows = self.conn.execute(
            "SELECT item_id, model FROM eval_results WHERE run_id = ?", (run_id,)
        )
        return {(r[0], r[1]) for r in rows}

    def put_results(self, rows: Iterable[ResultRow]) -> None:
        values = [result_values(r) for r in rows]
        if not values:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(RESULT_SQL, values)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def results(self, run_id: str) -> list[ResultRow]:
        rows = self.conn.execute(
            f"SELECT {_RESULT_COLUMNS} FROM eval_results WHERE run_id = ? "
            "ORDER BY model, task, item_id",
            (run_id,),
        )
        return [_result(r) for r in rows]

    def results_since(
        self, kinds: Sequence[str], since: float, models: Sequence[str] | None = None
    ) -> list[ResultRow]:
        """Results of runs of these kinds newer than ``since``, oldest first."""
        marks = ", ".join("?" * len(kinds))
        sql = (
            f"SELECT {', '.join('e.' + c.strip() for c in _RESULT_COLUMNS.split(','))} "
            f"FROM eval_results e JOIN eval_runs r ON r.id = e.run_id "
            f"WHERE r.kind IN ({marks}) AND e.created_at >= ?"
        )
        args: list[Any] = [*kinds, since]
        if models:
            sql += f" AND e.model IN ({', '.join('?' * len(models))})"
            args += list(models)
        sql += " ORDER BY e.created_at"
        return [_result(r) for r in self.conn.execute(sql, args)]

    # -- the matrix --------------------------------------------------------------------------

    def save_cells(self, run_id: str, cells: Sequence[Cell]) -> None:
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM eval_cells WHERE run_id = ?", (run_id,))
            self.conn.executemany(
                "INSERT INTO eval_cells (run_id, model, task, n, mean, lo, hi, method, errors, "
                "cost_mean, cost_total, latency_p50, latency_p95, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        c.model,
                        c.task,
                        c.n,
                        c.mean,
                        c.lo,
                        c.hi,
                        c.method,
                        c.errors,
                        None if c.cost_mean is None else format(c.cost_mean, "f"),
                        None if c.cost_total is None else format(c.cost_total, "f"),
                        c.latency_p50,
                        c.latency_p95,
                        now,
                    )
                    for c in cells
                ],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def cells(self, run_id: str) -> list[Cell]:
        rows = self.conn.execute(
            "SELECT run_id, model, task, n, mean, lo, hi, method, errors, cost_mean, cost_total, "
            "latency_p50, latency_p95 FROM eval_cells WHERE run_id = ? ORDER BY model, task",
            (run_id,),
        )
        return [
            Cell(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                None if r[9] is None else Decimal(r[9]),
                None if r[10] is None else Decimal(r[10]),
                r[11],
                r[12],
            )
            for r in rows
        ]


def _run_info(row: Any) -> RunInfo:
    return RunInfo(
        id=row["id"],
        kind=row["kind"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        dataset=row["dataset"],
        dataset_hash=row["dataset_hash"],
        models=orjson.loads(row["models"]),
        settings=orjson.loads(row["settings"]),
        status=row["status"],
        results=row["results"],
    )


def _result(r: Sequence[Any]) -> ResultRow:
    return ResultRow(
        run_id=r[0],
        item_id=r[1],
        model=r[2],
        task=r[3],
        created_at=r[4],
        score=r[5],
        scorer=r[6],
        detail=orjson.loads(r[7]) if r[7] else {},
        answer=r[8],
        error=r[9],
        cost_usd=None if r[10] is None else Decimal(r[10]),
        latency_ms=r[11],
        prompt_tokens=r[12],
        completion_tokens=r[13],
        refusal=bool(r[14]),
        system_fingerprint=r[15],
        request_id=r[16],
        prompt=r[17],
    )
