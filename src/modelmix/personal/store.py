"""The personalisation table in the ledger database, and the labelled requests it learns from.

``personal_offsets``: one row per subject (``user:z``, ``key:y``, ``team:x``, ``tag:t``) with
its offset on the learned router's log-odds of P(good), the evidence behind it, ``since`` (only
labels after it count: a reset starts the subject afresh) and ``disabled`` (the offset is kept
but not applied; subject ``*`` switches personalisation off for everyone). Created here with
portable DDL (SQLite and PostgreSQL) the first time a store opens the database.

Labels: a request's mean feedback score if a client rated it, else the judge's score of the
served model (as the canary's guardrails); the prediction is the served model's ``p_good`` in
the request's decision (the global router's, before any offset).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from modelmix.ledger.db import Database, Location, db_errors
from modelmix.ledger.opening import open_ledger, open_quality_db
from modelmix.personal.estimator import Estimate, estimate
from modelmix.quality.store import CLIENT_APIS

ALL = "*"

DDL = """CREATE TABLE IF NOT EXISTS personal_offsets (
    subject TEXT PRIMARY KEY,
    logit_offset DOUBLE PRECISION NOT NULL DEFAULT 0,
    raw DOUBLE PRECISION NOT NULL DEFAULT 0,
    n INTEGER NOT NULL DEFAULT 0,
    predicted DOUBLE PRECISION NOT NULL DEFAULT 0,
    accepted DOUBLE PRECISION NOT NULL DEFAULT 0,
    since DOUBLE PRECISION NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL
)"""

COLUMNS = (
    "subject",
    "logit_offset",
    "raw",
    "n",
    "predicted",
    "accepted",
    "since",
    "disabled",
    "updated_at",
)

_UPSERT = (
    "INSERT INTO personal_offsets (subject, logit_offset, raw, n, predicted, accepted, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET "
    "logit_offset = excluded.logit_offset, raw = excluded.raw, n = excluded.n, "
    "predicted = excluded.predicted, accepted = excluded.accepted, "
    "updated_at = excluded.updated_at"
)


def subjects_of(key_id: str | None, team: str | None, tags: Iterable[str]) -> list[str]:
    """A request's subjects, most specific first: users, the key, the team, other tags."""
    users = [t for t in tags if t.startswith("user:")]
    out = users
    if key_id:
        out.append(f"key:{key_id}")
    if team:
        out.append(f"team:{team}")
    out += [f"tag:{t}" for t in tags if not t.startswith("user:")]
    return out


def served_p(decision: dict[str, Any], model: str | None) -> float | None:
    """The global router's P(good) of the model that answered (None: not a learned route)."""
    for c in decision.get("candidates") or ():
        if isinstance(c, dict) and c.get("model") == model and "p_good" in c:
            return float(c["p_good"])
    return None


def labelled_requests(conn: Database, since: float) -> list[tuple[Any, float]]:
    """The client requests since ``since`` that were answered and labelled, with their label
    in [0, 1]: the mean feedback score if a client rated it, else the judge's score of the
    served model. Rows have ``key_id, team, tags, decision, final_model, route, started_at``
    (also read by the exploration's posteriors, ``quality/explore.py``)."""
    marks = ", ".join("?" * len(CLIENT_APIS))
    cur = conn.execute(
        "SELECT r.key_id, r.team, r.tags, r.decision, r.final_model, r.route, r.started_at, "
        "(SELECT AVG(f.score) FROM feedback f WHERE f.request_id = r.id "
        " AND f.score IS NOT NULL) AS feedback, "
        "(SELECT AVG(j.score) FROM judgements j WHERE j.request_id = r.id "
        " AND j.model = r.final_model) AS judged "
        f"FROM requests r WHERE r.started_at >= ? AND r.api IN ({marks}) "
        "AND r.status = 'ok' AND (EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = r.id) "
        "OR EXISTS (SELECT 1 FROM judgements j WHERE j.request_id = r.id))",
        (since, *CLIENT_APIS),
    )
    out: list[tuple[Any, float]] = []
    for r in cur.fetchall():
        label = r["feedback"] if r["feedback"] is not None else r["judged"]
        if label is not None:
            out.append((r, float(label)))
    return out


class PersonalStore:
    def __init__(self, location: Location, clock: Callable[[], float] = time.time) -> None:
        self.conn: Database = open_quality_db(location, check_same_thread=False)
        self.clock = clock
        self.conn.execute(DDL)

    def close(self) -> None:
        self.conn.close()

    def rows(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM personal_offsets ORDER BY subject")
        return [dict(r) for r in cur.fetchall()]

    def _since(self) -> dict[str, float]:
        return {r["subject"]: float(r["since"]) for r in self.rows()}

    def labelled(self, since: float) -> dict[str, list[tuple[float, float]]]:
        """(predicted, accepted) pairs per subject of the labelled requests since ``since``."""
        resets = self._since()
        out: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r, label in labelled_requests(self.conn, since):
            p = served_p(orjson.loads(r["decision"]), r["final_model"])
            if p is None:
                continue
            tags = orjson.loads(r["tags"] or "[]")
            for subject in subjects_of(r["key_id"], r["team"], tags):
                if float(r["started_at"]) > resets.get(subject, 0.0):
                    out[subject].append((p, float(label)))
        return out

    def refresh(self, prior_strength: float, cap: float, lookback_s: float) -> list[Estimate]:
        """Estimate every subject's offset from its labels and store them."""
        now = self.clock()
        pairs = self.labelled(now - lookback_s)
        known = {r["subject"] for r in self.rows()} - {ALL}
        subjects = sorted(pairs.keys() | known)
        estimates = [estimate(s, pairs.get(s, []), prior_strength, cap) for s in subjects]
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                _UPSERT,
                [
                    (e.subject, e.offset, e.raw, e.n, e.predicted, e.accepted, now)
                    for e in estimates
                ],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return estimates

    def active(self) -> dict[str, float]:
        """Offsets to apply: subject -> offset (empty when switched off for everyone)."""
        rows = self.rows()
        if any(r["subject"] == ALL and r["disabled"] for r in rows):
            return {}
        return {
            r["subject"]: float(r["logit_offset"])
            for r in rows
            if r["subject"] != ALL and not r["disabled"] and r["logit_offset"] != 0.0
        }

    def _set(self, subject: str, sql: str, args: tuple[Any, ...]) -> None:
        now = self.clock()
        self.conn.execute("BEGIN")
        try:
            self.conn.execute(
                "INSERT INTO personal_offsets (subject, updated_at) VALUES (?, ?) "
                "ON CONFLICT (subject) DO NOTHING",
                (subject, now),
            )
            self.conn.execute(sql, (*args, now, subject))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def reset(self, subject: str) -> None:
        """Forget ``subject``'s learned offset: only labels from now on count."""
        self._set(
            subject,
            "UPDATE personal_offsets SET logit_offset = 0, raw = 0, n = 0, predicted = 0, "
            "accepted = 0, since = ?, updated_at = ? WHERE subject = ?",
            (self.clock(),),
        )

    def set_disabled(self, subject: str, disabled: bool) -> None:
        """Stop (or resume) applying ``subject``'s offset (``*``: everyone's); kept either way."""
        self._set(
            subject,
            "UPDATE personal_offsets SET disabled = ?, updated_at = ? WHERE subject = ?",
            (int(disabled),),
        )


def team_offsets(location: Location) -> list[dict[str, Any]]:
    """The teams' rows, read without creating anything (none: personalisation never ran)."""
    conn = open_ledger(location)
    try:
        cur: Any = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM personal_offsets "
            "WHERE subject LIKE 'team:%' ORDER BY subject"
        )
        return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
    except db_errors():
        return []
    finally:
        conn.close()
