"""Virtual API keys: what clients present to the gateway instead of upstream keys.

Keys live in the ledger's SQLite file, table ``api_keys``. Only a SHA-256 hash of each key is
stored; the plaintext is shown once, by ``create``, and never logged or stored.

Why a plain SHA-256 and not a slow password hash (bcrypt, scrypt): keys are 32 random bytes
(256 bits) from ``secrets``, so brute-forcing the hash is hopeless whatever its speed; slow
hashes protect low-entropy *passwords*. A fast hash keeps ``verify`` cheap on every request.

Caching: ``verify`` remembers answers so a flood of requests does not hit SQLite each time.
A valid key is cached for ``POSITIVE_TTL`` (5 s), an invalid one for ``NEGATIVE_TTL`` (2 s).
So a key revoked from *another process* (``modelmix keys revoke`` while the gateway runs)
stops working within 5 seconds, and a new key works within 2; changes made through the same
``KeyStore`` take effect at once. The same holds for ``update`` and ``rotate``: after a
rotation made by another process the old key keeps working for up to 5 seconds.

Each key carries who it belongs to (``owner``, ``team``, ``tags``: spend is attributed to
them), what it may call (``allowed_models``: model or route names, ``*`` wildcards allowed;
empty = everything), its own budgets and its rate limits. Rotation gives a key a new secret
but keeps its id, so its budgets, spend and history carry on.
"""

from __future__ import annotations

import builtins
import fnmatch
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelmix.budgets.definitions import BudgetSpec, budget_from_dict
from modelmix.budgets.limits import RateLimit
from modelmix.ledger.db import (
    Database,
    Location,
    as_location,
    db_errors,
    prepare_location,
)
from modelmix.ledger.opening import open_ledger

__all__ = ["ADMIN_KEY_ID", "KEY_PREFIX", "NEGATIVE_TTL", "POSITIVE_TTL", "KeyInfo", "KeyStore"]

#: The key id the admin key is recorded under (virtual key ids start with ``key_``).
ADMIN_KEY_ID = "admin"
KEY_PREFIX = "mm-"
POSITIVE_TTL = 5.0
NEGATIVE_TTL = 2.0
_CACHE_MAX = 10_000
_MAX_KEY_LEN = 256
_clock = time.monotonic  # the cache's clock (tests replace it)

_COLUMNS = (
    "id, name, created_at, revoked_at, prefix, owner, team, tags, allowed_models, budgets, "
    "rate_limits, updated_at, allowed_tags"
)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    created_at: float
    revoked: bool
    prefix: str  # the key's first 8 characters, for display
    owner: str | None = None
    team: str | None = None
    tags: tuple[str, ...] = ()
    #: model or route names this key may ask for (``*`` wildcards); empty: any
    allowed_models: tuple[str, ...] = ()
    budgets: tuple[BudgetSpec, ...] = ()
    rate_limit: RateLimit | None = None
    updated_at: float | None = None
    #: tags (``*`` wildcards) this key may set on a request (metadata, ``x-modelmix-tag-*``,
    #: ``user``) and have counted against that tag's budgets; its own ``tags`` always count
    allowed_tags: tuple[str, ...] = ()
    _exact: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _patterns: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = frozenset(m for m in self.allowed_models if "*" not in m and "?" not in m)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(
            self, "_patterns", tuple(m for m in self.allowed_models if m not in exact)
        )

    def allows(self, model: str) -> bool:
        """May this key ask for ``model`` (a model or route name)?"""
        if not self.allowed_models or model in self._exact:
            return True
        return any(fnmatch.fnmatchcase(model, p) for p in self._patterns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, never including any secret."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "revoked": self.revoked,
            "owner": self.owner,
            "team": self.team,
            "tags": list(self.tags),
            "allowed_models": list(self.allowed_models),
            "allowed_tags": list(self.allowed_tags),
            "budgets": [b.to_dict() for b in self.budgets],
            "rate_limits": self.rate_limit.to_dict() if self.rate_limit else {},
        }


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _strings(values: Iterable[str], what: str) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{what} must be non-empty strings")
        out.append(v.strip())
    return tuple(dict.fromkeys(out))


def _key_budgets(key_id: str, budgets: Iterable[BudgetSpec | dict[str, Any]]) -> list[BudgetSpec]:
    out = []
    for b in budgets:
        data = b.to_dict() if isinstance(b, BudgetSpec) else b
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("scope", "subject")}
        out.append(budget_from_dict(data, scope="key", subject=key_id))
    return out


def _rate_limit(value: RateLimit | dict[str, Any] | None) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return None if value is None or value.empty else value
    if not isinstance(value, dict) or set(value) - {"rpm", "tpm"}:
        raise ValueError("rate limits are {rpm: int, tpm: int}")
    try:
        limit = RateLimit(
            rpm=None if value.get("rpm") is None else int(value["rpm"]),
            tpm=None if value.get("tpm") is None else int(value["tpm"]),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid rate limit: {exc}") from None
    return None if limit.empty else limit


class KeyStore:
    """Create, list, update, rotate, revoke and verify virtual keys. Thread-safe."""

    def __init__(self, path: Location) -> None:
        self.path = as_location(path)
        prepare_location(self.path)
        self._conn: Database = open_ledger(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        # sha256 hex -> (expires at (monotonic), KeyInfo or None)
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        # key id -> (expires at (monotonic), the KeyInfo last verified): what the request
        # path reads right after verify (which refreshes it)
        self._by_id: dict[str, tuple[float, KeyInfo]] = {}
        self._any: tuple[float, bool] | None = None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def _info(row: Sequence[Any]) -> KeyInfo:
        (
            id_,
            name,
            created_at,
            revoked_at,
            prefix,
            owner,
            team,
            tags,
            allowed,
            budgets,
            rate_limits,
            updated_at,
            allowed_tags,
        ) = row[:13]
        specs = tuple(budget_from_dict(b, scope="key", subject=id_) for b in orjson.loads(budgets))
        limit = _rate_limit(orjson.loads(rate_limits))
        return KeyInfo(
            id=id_,
            name=name,
            created_at=created_at,
            revoked=revoked_at is not None,
            prefix=prefix,
            owner=owner,
            team=team,
            tags=tuple(orjson.loads(tags)),
            allowed_models=tuple(orjson.loads(allowed)),
            budgets=specs,
            rate_limit=limit,
            updated_at=updated_at,
            allowed_tags=tuple(orjson.loads(allowed_tags or "[]")),
        )

    def _invalidate(self) -> None:
        self._cache.clear()
        self._by_id.clear()
        self._any = None

    def create(
        self,
        name: str,
        *,
        owner: str | None = None,
        team: str | None = None,
        tags: Iterable[str] = (),
        allowed_models: Iterable[str] = (),
        budgets: Iterable[BudgetSpec | dict[str, Any]] = (),
        rate_limit: RateLimit | dict[str, Any] | None = None,
        allowed_tags: Iterable[str] = (),
    ) -> tuple[KeyInfo, str]:
        """Make a key named ``name``; returns its info and the plaintext, the only time the
        plaintext is available. Raises ``ValueError`` if an active key has that name or a
        setting is invalid."""
        name = name.strip()
        if not name:
            raise ValueError("a key needs a name")
        plaintext = _new_secret()
        key_id = "key_" + secrets.token_hex(8)
        info = KeyInfo(
            id=key_id,
            name=name,
            created_at=time.time(),
            revoked=False,
            prefix=plaintext[:8],
            owner=(owner or "").strip() or None,
            team=(team or "").strip() or None,
            tags=_strings(tags, "tags"),
            allowed_models=_strings(allowed_models, "allowed models"),
            budgets=tuple(_key_budgets(key_id, budgets)),
            rate_limit=_rate_limit(rate_limit),
            allowed_tags=_strings(allowed_tags, "allowed tags"),
        )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                clash = self._conn.execute(
                    "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)
                ).fetchone()
                if clash:
                    raise ValueError(f"an active key named {name!r} already exists")
                self._conn.execute(
                    f"INSERT INTO api_keys ({_COLUMNS}, key_hash) "
                    "VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                    (
                        info.id,
                        info.name,
                        info.created_at,
                        info.prefix,
                        info.owner,
                        info.team,
                        *self._json_fields(info),
                        orjson.dumps(list(info.allowed_tags)).decode(),
                        _hash(plaintext),
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._invalidate()
        return info, plaintext

    @staticmethod
    def _json_fields(info: KeyInfo) -> tuple[str, str, str, str]:
        d = info.to_dict()
        return (
            orjson.dumps(d["tags"]).decode(),
            orjson.dumps(d["allowed_models"]).decode(),
            orjson.dumps(d["budgets"]).decode(),
            orjson.dumps(d["rate_limits"]).decode(),
        )

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """Every key (revoked ones too unless told otherwise), oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys{where} ORDER BY created_at, id"
            ).fetchall()
        return [self._info(r) for r in rows]

    def get(self, id_or_name: str) -> KeyInfo | None:
        """The key with this id, else the active key with this name."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? OR "
                "(name = ? AND revoked_at IS NULL) ORDER BY id = ? DESC LIMIT 1",
                (id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return self._info(row) if row else None

    def update(
        self,
        id_or_name: str,
        *,
        name: str | None = None,
        owner: str | None = None,
        team: str | None = None,
        tags: Iterable[str] | None = None,
        allowed_models: Iterable[str] | None = None,
        budgets: Iterable[BudgetSpec | dict[str, Any]] | None = None,
        rate_limit: RateLimit | dict[str, Any] | None = None,
        allowed_tags: Iterable[str] | None = None,
    ) -> KeyInfo:
        """Change an active key's settings; ``None`` leaves a setting alone, ``""`` clears
        owner/team, an empty list clears a list, ``{}`` (or ``RateLimit()``) clears the rate
        limits. Raises ``KeyError`` if there is no such active key, ``ValueError`` on bad
        settings. Takes effect at once here, within ``POSITIVE_TTL`` in other processes."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL AND "
                    "(id = ? OR name = ?) ORDER BY id = ? DESC LIMIT 1",
                    (id_or_name, id_or_name, id_or_name),
                ).fetchone()
                if row is None:
                    raise KeyError(id_or_name)
                old = self._info(row)
                new_name = old.name if name is None else name.strip()
                if not new_name:
                    raise ValueError("a key needs a name")
                if (
                    new_name != old.name
                    and self._conn.execute(
                        "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (new_name,)
                    ).fetchone()
                ):
                    raise ValueError(f"an active key named {new_name!r} already exists")
                info = KeyInfo(
                    id=old.id,
                    name=new_name,
                    created_at=old.created_at,
                    revoked=False,
                    prefix=old.prefix,
                    owner=old.owner if owner is None else owner.strip() or None,
                    team=old.team if team is None else team.strip() or None,
                    tags=old.tags if tags is None else _strings(tags, "tags"),
                    allowed_models=old.allowed_models
                    if allowed_models is None
                    else _strings(allowed_models, "allowed models"),
                    budgets=old.budgets
                    if budgets is None
                    else tuple(_key_budgets(old.id, budgets)),
                    rate_limit=old.rate_limit if rate_limit is None else _rate_limit(rate_limit),
                    updated_at=time.time(),
                    allowed_tags=old.allowed_tags
                    if allowed_tags is None
                    else _strings(allowed_tags, "allowed tags"),
                )
                self._conn.execute(
                    "UPDATE api_keys SET name = ?, owner = ?, team = ?, tags = ?, "
                    "allowed_models = ?, budgets = ?, rate_limits = ?, updated_at = ?, "
                    "allowed_tags = ? WHERE id = ?",
                    (
                        info.name,
                        info.owner,
                        info.team,
                        *self._json_fields(info),
                        info.updated_at,
                        orjson.dumps(list(info.allowed_tags)).decode(),
                        info.id,
                    ),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._invalidate()
        return info

    def rotate(self, id_or_name: str) -> tuple[KeyInfo, str]:
        """Give an active key a new secret (same id, settings and spend): the old secret stops
        working at once here, within ``POSITIVE_TTL`` elsewhere. Returns the info and the new
        plaintext. Raises ``KeyError`` if there is no such active key."""
        plaintext = _new_secret()
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT id FROM api_keys WHERE revoked_at IS NULL AND (id = ? OR name = ?) "
                    "ORDER BY id = ? DESC LIMIT 1",
                    (id_or_name, id_or_name, id_or_name),
                ).fetchone()
                if row is None:
                    raise KeyError(id_or_name)
                self._conn.execute(
                    "UPDATE api_keys SET key_hash = ?, prefix = ?, updated_at = ? WHERE id = ?",
                    (_hash(plaintext), plaintext[:8], now, row[0]),
                )
                info_row = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (row[0],)
                ).fetchone()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._invalidate()
        return self._info(info_row), plaintext

    def revoke(self, id_or_name: str) -> bool:
        """Revoke the key with this id, or the active key with this name. False if none."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND "
                "(id = ? OR name = ?)",
                (time.time(), id_or_name, id_or_name),
            )
            self._cache.clear()
            self._by_id.clear()
            return cur.rowcount > 0

    def verify(self, presented: str) -> KeyInfo | None:
        """The active key matching ``presented``, or None. Answers are cached (see the module
        docstring for the TTLs)."""
        if not presented.startswith(KEY_PREFIX) or len(presented) > _MAX_KEY_LEN:
            return None
        digest = _hash(presented)
        now = _clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = self._lookup(digest)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # bounded: a flood of distinct bad keys cannot grow it forever
        self._cache[digest] = (now + (POSITIVE_TTL if info else NEGATIVE_TTL), info)
        if info is not None:
            if len(self._by_id) >= _CACHE_MAX:
                self._by_id.clear()
            self._by_id[info.id] = (now + POSITIVE_TTL, info)
        return info

    def by_id(self, key_id: str) -> KeyInfo | None:
        """The settings of an active key that ``verify`` just accepted: a dict look-up (the
        request path calls this right after ``Authenticator.authenticate``). Falls back to
        SQLite for an id ``verify`` has not seen within ``POSITIVE_TTL`` (so a library caller
        passing key ids sees changes from other processes within that time too)."""
        hit = self._by_id.get(key_id)
        now = _clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        found = self.get(key_id)  # an id verify has not seen lately (library callers)
        if found is None or found.revoked or found.id != key_id:
            self._by_id.pop(key_id, None)
            return None
        self._by_id[key_id] = (now + POSITIVE_TTL, found)
        return found

    def active_budgets(self) -> builtins.list[BudgetSpec]:
        """The budgets on every active key (to seed spend at start-up)."""
        return [b for k in self.list(include_revoked=False) for b in k.budgets]

    def _lookup(self, digest: str) -> KeyInfo | None:
        try:
            with self._lock:
                row = self._conn.execute(
                    f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_hash = ?",
                    (digest,),
                ).fetchone()
        except db_errors():
            return None  # fail closed
        if row is None or row[3] is not None:
            return None
        if not hmac.compare_digest(row[13], digest):
            return None
        try:
            return self._info(row)
        except ValueError:  # settings edited by hand into something invalid: fail closed
            return None

    def any_keys(self) -> bool:
        """True once any key has been created, *revoked ones included*: revoking every key
        must lock the gateway, not open it. Cached for ``POSITIVE_TTL``."""
        now = _clock()
        cached = self._any
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._lock:
            found = self._conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
        self._any = (now + POSITIVE_TTL, found)
        return found
