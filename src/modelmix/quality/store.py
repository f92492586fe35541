"""Feedback, captured samples, judgements and alarms in the ledger database.

Reads and the feedback insert (which the client waits for) go through ``QualityStore``'s own
connection; the high-volume writes of the request path's background work (samples,
judgements) are statements queued on the ``BatchWriter`` (``sample_statement``...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from modelmix.ledger.db import Database, Location, prepare_location, upsert_sql
from modelmix.ledger.opening import open_quality_db

#: Requests from clients (not the quality loop's own eval, judge, shadow or probe calls).
CLIENT_APIS = ("openai", "anthropic", "library", "responses")  # responses: issue 12

SAMPLE_SQL = upsert_sql(
    "samples",
    (
        "request_id",
        "created_at",
        "route",
        "model",
        "policy_version",
        "messages",
        "answer",
        "completion_tokens",
        "refusal",
        "system_fingerprint",
    ),
    ("request_id",),
)
JUDGEMENT_SQL = upsert_sql(
    "judgements",
    ("request_id", "model", "source", "judge", "score", "created_at"),
    ("request_id", "model", "source"),
)

POSITIVE_LABELS = frozenset({"good", "positive", "thumbs_up", "up", "correct", "helpful"})
NEGATIVE_LABELS = frozenset({"bad", "negative", "thumbs_down", "down", "wrong", "unhelpful"})


@dataclass(slots=True)
class RequestOwner:
    id: str
    key_id: str | None
    api: str
    final_model: str | None
    route: str | None


@dataclass(slots=True)
class Observation:
    """One quality or behaviour observation of a model (or route), oldest first in a series."""

    at: float
    subject: str  # model or route name
    score: float | None = None
    completion_tokens: int | None = None
    refusal: bool | None = None
    fingerprint: str | None = None
    source: str = ""


@dataclass(slots=True)
class Alarm:
    id: int
    at: float
    kind: str
    subject: str
    source: str
    detail: dict[str, Any]
    cleared_at: float | None


def label_score(label: str | None) -> float | None:
    if label is None:
        return None
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    if key in POSITIVE_LABELS:
        return 1.0
    if key in NEGATIVE_LABELS:
        return 0.0
    return None


class QualityStore:
    def __init__(self, path: Location) -> None:
        prepare_location(path)
        self.path = str(path)
        self.conn: Database = open_quality_db(path, check_same_thread=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> QualityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    # -- feedback ----------------------------------------------------------------------------

    def request_owner(self, request_id: str) -> RequestOwner | None:
        rows = self.query(
            "SELECT id, key_id, api, final_model, route FROM requests WHERE id = ?", (request_id,)
        )
        if not rows:
            return None
        r = rows[0]
        return RequestOwner(r["id"], r["key_id"], r["api"], r["final_model"], r["route"])

    def add_feedback(
        self,
        request_id: str,
        key_id: str | None,
        score: float | None,
        label: str | None,
        comment: str | None,
        at: float | None = None,
    ) -> dict[str, Any]:
        created = time.time() if at is None else at
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO feedback (request_id, key_id, score, label, comment, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (request_id, key_id, score, label, comment, created),
            )
            fid = cur.fetchone()[0]
        return {
            "id": f"fb-{fid}",
            "object": "feedback",
            "request_id": request_id,
            "score": score,
            "label": label,
            "comment": comment,
            "created_at": created,
        }

    def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT id, key_id, score, label, comment, created_at FROM feedback "
            "WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
        return [dict(r) for r in rows]

    # -- rolling quality ---------------------------------------------------------------------

    def labelled(self, since: float, by: str = "model") -> list[Observation]:
        """Quality observations of live client requests since ``since``: feedback scores (a
        person's verdict) and judge scores, per answering model (``by="model"``) or route."""
        column = "r.final_model" if by == "model" else "r.route"
        marks = ", ".join("?" * len(CLIENT_APIS))
        rows = self.query(
            f"SELECT f.created_at AS at, {column} AS subject, f.score AS score, 'feedback' AS src "
            f"FROM feedback f JOIN requests r ON r.id = f.request_id "
            f"WHERE f.created_at >= ? AND f.score IS NOT NULL AND {column} IS NOT NULL "
            f"AND r.api IN ({marks}) "
            f"UNION ALL "
            f"SELECT j.created_at AS at, {column} AS subject, j.score AS score, 'judge' AS src "
            f"FROM judgements j JOIN requests r ON r.id = j.request_id "
            f"WHERE j.created_at >= ? AND j.model = r.final_model AND {column} IS NOT NULL "
            f"AND r.api IN ({marks}) "
            f"ORDER BY at",
            (since, *CLIENT_APIS, since, *CLIENT_APIS),
        )
        return [Observation(r["at"], r["subject"], score=r["score"], source=r["src"]) for r in rows]

    def behaviour(self, since: float) -> list[Observation]:
        """Captured live answers' length, refusal and fingerprint, per model, oldest first."""
        rows = self.query(
            "SELECT created_at, model, completion_tokens, refusal, system_fingerprint "
            "FROM samples WHERE created_at >= ? AND model IS NOT NULL ORDER BY created_at",
            (since,),
        )
        return [
            Observation(
                r[0],
                r[1],
                completion_tokens=r[2],
                refusal=bool(r[3]),
                fingerprint=r[4],
                source="live",
            )
            for r in rows
        ]

    # -- alarms ------------------------------------------------------------------------------

    def open_alarms(self) -> list[Alarm]:
        return self.alarms(active_only=True)

    def alarms(self, active_only: bool = False, limit: int = 200) -> list[Alarm]:
        sql = "SELECT * FROM alarms"
        if active_only:
            sql += " WHERE cleared_at IS NULL"
        sql += " ORDER BY id DESC LIMIT ?"
        return [
            Alarm(
                r["id"],
                r["at"],
                r["kind"],
                r["subject"],
                r["source"],
                orjson.loads(r["detail"]),
                r["cleared_at"],
            )
            for r in self.query(sql, (limit,))
        ]

    def raise_alarm(
        self, kind: str, subject: str, source: str, detail: dict[str, Any], at: float
    ) -> int:
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO alarms (at, kind, subject, source, detail) VALUES (?, ?, ?, ?, ?) "
                "RETURNING id",
                (at, kind, subject, source, orjson.dumps(detail).decode()),
            )
            return int(cur.fetchone()[0])

    def clear_alarm(self, alarm_id: int, at: float) -> None:
        with self._lock:
            self.conn.execute("UPDATE alarms SET cleared_at = ? WHERE id = ?", (at, alarm_id))
