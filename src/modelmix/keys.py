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
``KeyStore`` take effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from modelmix.ledger.schema import connect, ensure_schema

__all__ = ["KEY_PREFIX", "NEGATIVE_TTL", "POSITIVE_TTL", "KeyInfo", "KeyStore"]

KEY_PREFIX = "mm-"
POSITIVE_TTL = 5.0
NEGATIVE_TTL = 2.0
_CACHE_MAX = 10_000
_MAX_KEY_LEN = 256
_clock = time.monotonic  # the cache's clock (tests replace it)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    created_at: float
    revoked: bool
    prefix: str  # the key's first 8 characters, for display


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """Create, list, revoke and verify virtual keys. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(str(self.path), check_same_thread=False)
        ensure_schema(self._conn)
        self._lock = threading.Lock()
        # sha256 hex -> (expires at (monotonic), KeyInfo or None)
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._any: tuple[float, bool] | None = None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def _info(row: tuple[str, str, float, float | None, str]) -> KeyInfo:
        id_, name, created_at, revoked_at, prefix = row
        return KeyInfo(
            id=id_, name=name, created_at=created_at, revoked=revoked_at is not None, prefix=prefix
        )

    def create(self, name: str) -> tuple[KeyInfo, str]:
        """Make a key named ``name``; returns its info and the plaintext, the only time the
        plaintext is available. Raises ``ValueError`` if an active key has that name."""
        name = name.strip()
        if not name:
            raise ValueError("a key needs a name")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(
            id="key_" + secrets.token_hex(8),
            name=name,
            created_at=time.time(),
            revoked=False,
            prefix=plaintext[:8],
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
                    "INSERT INTO api_keys (id, name, key_hash, prefix, created_at, revoked_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL)",
                    (info.id, info.name, _hash(plaintext), info.prefix, info.created_at),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._cache.clear()
            self._any = None
        return info, plaintext

    def list(self) -> list[KeyInfo]:
        """Every key, revoked ones included, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, created_at, revoked_at, prefix FROM api_keys "
                "ORDER BY created_at, id"
            ).fetchall()
        return [self._info(r) for r in rows]

    def revoke(self, id_or_name: str) -> bool:
        """Revoke the key with this id, or the active key with this name. False if none."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE revoked_at IS NULL AND "
                "(id = ? OR name = ?)",
                (time.time(), id_or_name, id_or_name),
            )
            self._cache.clear()
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
        return info

    def _lookup(self, digest: str) -> KeyInfo | None:
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT id, name, created_at, revoked_at, prefix, key_hash FROM api_keys "
                    "WHERE key_hash = ?",
                    (digest,),
                ).fetchone()
        except sqlite3.Error:
            return None  # fail closed
        if row is None or row[3] is not None:
            return None
        if not hmac.compare_digest(row[5], digest):
            return None
        return self._info(row[:5])

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
