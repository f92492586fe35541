"""The live routing policy over Redis, for replicas that each keep their own SQLite ledger.

On a PostgreSQL ledger every replica reads the same ``policy_state`` row: nothing more is
needed. With a ledger per replica and one Redis (``state.redis_url``), what serves is also
published to Redis under ``{state.prefix}:policy``: one JSON value with the serving state (live
version, canary, share, stickiness) and the documents of the versions it names, so a replica
that never saw a version can load it. Published by ``modelmix policy deploy / rollback / canary
/ promote / abort`` (run with the config of any replica) and by a replica whose canary
guardrails promote or roll back; every replica's policy watcher reads it each
``quality.policy.poll_seconds`` and, when it changed, records it in its own ledger
(``PolicyStore.adopt``: the versions, the state and an ``adopt`` event), so the change is
served by every replica within one poll interval.

When a replica starts, it adopts what Redis has, unless its config file's routes changed
since its ledger last saw them (an operator edited the file): then the file wins, as on one
host, and is published. Redis unreachable: publishing logs a warning (the change serves on
that replica's ledger only) and the watchers keep what they serve.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import redis

from modelmix.quality.policy_store import PolicyStore
from modelmix.state.config import StateConfig

__all__ = ["SharedPolicy", "snapshot"]

log = logging.getLogger("modelmix.quality")

_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


def snapshot(store: PolicyStore) -> dict[str, Any]:
    """What serves on ``store``'s ledger, with the documents of the versions it names."""
    state = store.state()
    versions: dict[str, Any] = {}
    for vid in (state.live, state.canary):
        if vid is not None:
            v = store.version(vid)
            versions[vid] = {
                "document": v.document,
                "message": v.message,
                "source": v.source,
                "parent": v.parent,
            }
    return {
        "at": time.time(),
        "state": {
            "live": state.live,
            "canary": state.canary,
            "canary_share": state.canary_share,
            "canary_sticky": state.canary_sticky,
            "canary_started_at": state.canary_started_at,
            "canary_settings": state.canary_settings,
        },
        "versions": versions,
    }


class SharedPolicy:
    """One replica's (or one CLI run's) handle on the published policy."""

    def __init__(self, settings: StateConfig) -> None:
        assert settings.redis_url is not None
        self.key = f"{settings.prefix}:policy"
        self.client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=max(settings.timeout, 1.0),
            socket_connect_timeout=max(settings.timeout, 1.0),
        )
        #: The ``at`` of the last published value this replica adopted or made.
        self.seen: float | None = None

    @classmethod
    def of(cls, settings: StateConfig, sqlite_ledger: bool) -> SharedPolicy | None:
        """The handle when replicas need it: Redis set and a ledger per replica."""
        return cls(settings) if settings.redis_url is not None and sqlite_ledger else None

    def publish(self, store: PolicyStore) -> bool:
        """Publish what serves on ``store``'s ledger; False (logged) if Redis is down."""
        value = snapshot(store)
        try:
            self.client.set(self.key, orjson.dumps(value))
        except _DOWN as exc:
            log.warning("cannot publish the routing policy to Redis (%s): this replica only", exc)
            return False
        self.seen = value["at"]
        return True

    def read(self) -> dict[str, Any] | None:
        """The published value (None: nothing published, or Redis unreachable)."""
        try:
            raw = self.client.get(self.key)
        except _DOWN as exc:
            log.warning("cannot read the shared routing policy from Redis: %s", exc)
            return None
        return orjson.loads(raw) if raw else None

    def adopt_into(self, store: PolicyStore) -> bool:
        """Record a newly published policy in ``store``; True when what serves changed."""
        value = self.read()
        if value is None or value.get("at") == self.seen:
            return False
        self.seen = value.get("at")
        return store.adopt(value["state"], value["versions"])

    def close(self) -> None:
        self.client.close()
