"""Policy versions, deployment events and the serving state in the ledger database.

``policy_state`` (one row) says what serves: the ``live`` version and, during a canary, the
``canary`` version with its share. Every change is also an event (``policy_events``: deploy,
rollback, canary_start, promote, canary_rollback, canary_abort, and adopt: a change another
replica published over Redis, ``shared_policy.py``), so ``modelmix policy log``
tells the story and a rollback knows what was live before.

When the gateway starts, the config file's routes are recorded as a version
(``sync_file``). If they differ from the routes the file held last time, the file wins (an
operator edited it) and becomes live; otherwise the recorded live version does (a rollback or
a promoted canary survives a restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelmix.ledger.db import Database, Location, dialect, prepare_location, upsert_sql
from modelmix.ledger.opening import open_quality_db
from modelmix.quality.policy import Document, version_of


@dataclass(slots=True)
class PolicyVersion:
    id: str
    created_at: float
    message: str
    source: str
    document: Document
    parent: str | None


@dataclass(slots=True)
class PolicyState:
    live: str | None = None
    file_version: str | None = None
    canary: str | None = None
    canary_share: float | None = None
    canary_sticky: str | None = None
    canary_started_at: float | None = None
    canary_settings: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0

    @property
    def key(self) -> tuple[Any, ...]:
        """Changes whenever what serves changes (the watcher compares these)."""
        return (self.live, self.canary, self.canary_share, self.canary_sticky)


@dataclass(slots=True)
class PolicyEvent:
    seq: int
    at: float
    kind: str
    version: str | None
    detail: dict[str, Any]


_ADD_VERSION = upsert_sql(
    "policy_versions",
    ("id", "created_at", "message", "source", "document", "parent"),
    ("id",),
    update=False,
)
_WRITE_STATE = upsert_sql(
    "policy_state",
    (
        "id",
        "live",
        "file_version",
        "canary",
        "canary_share",
        "canary_sticky",
        "canary_started_at",
        "canary_settings",
        "updated_at",
    ),
    ("id",),
)


class PolicyError(ValueError):
    """An operation that cannot be done (unknown version, no canary running...)."""


class PolicyStore:
    def __init__(self, path: Location, clock: Callable[[], float] = time.time) -> None:
        prepare_location(path)
        self.conn: Database = open_quality_db(path, check_same_thread=False)
        self.clock = clock

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PolicyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- versions ----------------------------------------------------------------------------

    def add_version(
        self, document: Document, message: str, source: str, parent: str | None = None
    ) -> str:
        """Record ``document`` (no-op when that version exists); returns its id."""
        vid = version_of(document)
        self.conn.execute(
            _ADD_VERSION,
            (vid, self.clock(), message, source, orjson.dumps(document).decode(), parent),
        )
        return vid

    def version(self, ident: str) -> PolicyVersion:
        """A version by id, unique id prefix, or ``live`` / ``canary``."""
        if ident in ("live", "canary"):
            state = self.state()
            target = state.live if ident == "live" else state.canary
            if target is None:
                raise PolicyError(f"there is no {ident} version")
            ident = target
        rows = self.conn.execute(
            "SELECT * FROM policy_versions WHERE id LIKE ? ORDER BY created_at", (f"{ident}%",)
        ).fetchall()
        exact = [r for r in rows if r["id"] == ident]
        if exact:
            rows = exact
        if not rows:
            raise PolicyError(f"no policy version {ident!r} (see modelmix policy list)")
        if len(rows) > 1:
            raise PolicyError(f"{ident!r} matches several versions; give more of the id")
        return _version(rows[0])

    def versions(self) -> list[PolicyVersion]:
        # ties in time keep the order of insertion (SQLite's rowid; Postgres: the row's place)
        order = "rowid" if dialect(self.conn) == "sqlite" else "ctid"
        rows = self.conn.execute(f"SELECT * FROM policy_versions ORDER BY created_at, {order}")
        return [_version(r) for r in rows]

    # -- state -------------------------------------------------------------------------------

    def state(self) -> PolicyState:
        row = self.conn.execute("SELECT * FROM policy_state WHERE id = 1").fetchone()
        if row is None:
            return PolicyState()
        return PolicyState(
            live=row["live"],
            file_version=row["file_version"],
            canary=row["canary"],
            canary_share=row["canary_share"],
            canary_sticky=row["canary_sticky"],
            canary_started_at=row["canary_started_at"],
            canary_settings=orjson.loads(row["canary_settings"] or "{}"),
            updated_at=row["updated_at"],
        )

    def events(self, limit: int = 50) -> list[PolicyEvent]:
        rows = self.conn.execute(
            "SELECT * FROM policy_events ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            PolicyEvent(r["seq"], r["at"], r["kind"], r["version"], orjson.loads(r["detail"]))
            for r in rows
        ]

    def _begin(self) -> PolicyState:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.state()

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback_txn(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _write_state(self, state: PolicyState) -> None:
        state.updated_at = self.clock()
        self.conn.execute(
            _WRITE_STATE,
            (
                1,
                state.live,
                state.file_version,
                state.canary,
                state.canary_share,
                state.canary_sticky,
                state.canary_started_at,
                orjson.dumps(state.canary_settings).decode(),
                state.updated_at,
            ),
        )

    def _event(self, kind: str, version: str | None, detail: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO policy_events (at, kind, version, detail) VALUES (?, ?, ?, ?)",
            (self.clock(), kind, version, orjson.dumps(detail).decode()),
        )

    @staticmethod
    def _clear_canary(state: PolicyState) -> None:
        state.canary = None
        state.canary_share = None
        state.canary_sticky = None
        state.canary_started_at = None
        state.canary_settings = {}

    def sync_file(self, document: Document, source: str) -> PolicyState:
        """Record the config file's routes; make them live if the file changed (see above)."""
        try:
            state = self._begin()
            vid = self.add_version(document, f"routes of {source}", source, state.live)
            if state.file_version != vid:
                if state.canary is not None:
                    self._event("canary_abort", state.canary, {"reason": "config file changed"})
                    self._clear_canary(state)
                state.file_version = vid
                if state.live != vid:
                    self._event("deploy", vid, {"from": state.live, "reason": f"{source}"})
                state.live = vid
                self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return self.state()

    def deploy(self, ident: str, reason: str = "deploy", kind: str = "deploy") -> PolicyState:
        """Make a version live at once (ends any canary)."""
        target = self.version(ident).id
        try:
            state = self._begin()
            if state.canary is not None:
                self._event("canary_abort", state.canary, {"reason": f"{kind} of {target}"})
                self._clear_canary(state)
            self._event(kind, target, {"from": state.live, "reason": reason})
            state.live = target
            self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return self.state()

    def previous_live(self) -> str | None:
        """The version that was live before the current one (from the events)."""
        state = self.state()
        rows = self.conn.execute(
            "SELECT version, detail FROM policy_events WHERE kind IN ('deploy', 'rollback', "
            "'promote', 'adopt') ORDER BY seq DESC"
        ).fetchall()
        for row in rows:
            if row["version"] == state.live:
                before = orjson.loads(row["detail"]).get("from")
                if before and before != state.live:
                    return str(before)
        return None

    def rollback(self, ident: str | None = None, reason: str = "manual rollback") -> PolicyState:
        """Make ``ident`` (default: the previously live version) live again."""
        target = ident or self.previous_live()
        if target is None:
            raise PolicyError("no earlier live version to roll back to; name one")
        return self.deploy(target, reason=reason, kind="rollback")

    def start_canary(
        self, ident: str, share: float, sticky: str, settings: dict[str, Any] | None = None
    ) -> PolicyState:
        if not 0 < share < 1:
            raise PolicyError("a canary's share must be between 0 and 1 (exclusive)")
        target = self.version(ident).id
        try:
            state = self._begin()
            if state.live == target:
                raise PolicyError(f"{target} is already live")
            if state.canary is not None:
                raise PolicyError(f"canary {state.canary} is running; promote or abort it first")
            state.canary = target
            state.canary_share = share
            state.canary_sticky = sticky
            state.canary_started_at = self.clock()
            state.canary_settings = {"looks": 0, **(settings or {})}
            self._event(
                "canary_start", target, {"stable": state.live, "share": share, "sticky": sticky}
            )
            self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return self.state()

    def count_look(self, canary: str, looked_at: int) -> int:
        """Count one more guardrail check of ``canary``, made when its arm had ``looked_at``
        requests; returns the number of looks."""
        try:
            state = self._begin()
            if state.canary != canary:
                self._commit()
                return 0
            looks = int(state.canary_settings.get("looks", 0)) + 1
            state.canary_settings = {
                **state.canary_settings,
                "looks": looks,
                "looked_at": looked_at,
            }
            self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return looks

    def adopt(self, shared: Mapping[str, Any], versions: Mapping[str, Mapping[str, Any]]) -> bool:
        """Serve what another replica published (``quality/shared_policy.py``): record the
        ``versions`` it names (documents checked against their ids) and its serving state, with
        an ``adopt`` event. True when what serves here changed."""
        for vid, v in versions.items():
            if version_of(v["document"]) != vid:
                raise PolicyError(f"shared policy version {vid!r} does not match its document")
            self.add_version(v["document"], str(v.get("message") or ""), "shared", v.get("parent"))
        try:
            state = self._begin()
            before = state.key
            state.live = shared["live"]
            state.canary = shared.get("canary")
            state.canary_share = shared.get("canary_share")
            state.canary_sticky = shared.get("canary_sticky")
            state.canary_started_at = shared.get("canary_started_at")
            state.canary_settings = dict(shared.get("canary_settings") or {})
            changed = state.key != before
            if changed:
                detail = {"from": before[0], "canary": state.canary, "reason": "shared (Redis)"}
                self._event("adopt", state.live, detail)
                self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return changed

    def end_canary(self, canary: str, action: str, detail: dict[str, Any]) -> bool:
        """``promote`` (the canary becomes live), ``rollback`` (the stable version stays) or
        ``abort``; only if ``canary`` is still the running canary. Returns whether it was."""
        if action not in ("promote", "rollback", "abort"):
            raise PolicyError(f"unknown canary action {action!r}")
        try:
            state = self._begin()
            if state.canary != canary:
                self._commit()
                return False
            kind = {"promote": "promote", "rollback": "canary_rollback", "abort": "canary_abort"}
            self._event(kind[action], canary, {"from": state.live, **detail})
            if action == "promote":
                state.live = canary
            self._clear_canary(state)
            self._write_state(state)
            self._commit()
        except BaseException:
            self._rollback_txn()
            raise
        return True


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(
        id=row["id"],
        created_at=row["created_at"],
        message=row["message"],
        source=row["source"],
        document=orjson.loads(row["document"]),
        parent=row["parent"],
    )
