"""What every replica must hear at once, over Redis: key revocations and deployment cool-downs.

- **Revocations.** ``revoke(key_id)`` adds the id to the set ``{prefix}:revoked`` and publishes
  it on ``{prefix}:events``. Every replica keeps the set in memory (loaded when it subscribes,
  again after every reconnection, then kept current by the messages) and refuses those keys at
  admission: a set look-up, no round trip. So a key revoked through any replica's admin API, or
  by ``modelmix keys revoke --config <a config with state.redis_url>``, stops on every replica
  within a message's delivery, even where each replica has its own ledger.
- **Cool-downs.** When a deployment fails often enough to rest on one replica
  (``engine.Health``), the others are told to rest it as long: they skip it at once instead of
  each finding out with failed attempts of their own.

Messages are JSON ``[origin, kind, *args]``; a replica ignores its own. A subscriber thread
holds the pub/sub connection and reconnects every ``probe_interval`` while Redis is down
(messages published meanwhile are lost: pub/sub keeps nothing; the revoked set is reloaded on
reconnection, a missed cool-down only costs the failed attempts it would have saved).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import orjson
import redis

from modelmix.state.config import StateConfig
from modelmix.state.link import DOWN_ERRORS, RedisLink

__all__ = ["SharedEvents", "publish_revocation"]

log = logging.getLogger("modelmix.state")


def _names(prefix: str) -> tuple[str, str]:
    return f"{prefix}:events", f"{prefix}:revoked"


def _revoke(client: redis.Redis, prefix: str, origin: str, key_id: str) -> None:
    channel, revoked = _names(prefix)
    pipe = client.pipeline(transaction=True)
    pipe.sadd(revoked, key_id)
    pipe.publish(channel, orjson.dumps([origin, "revoke", key_id]))
    pipe.execute()


def publish_revocation(settings: StateConfig, key_id: str) -> None:
    """From outside a gateway (``modelmix keys revoke``): tell every replica."""
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        _revoke(client, settings.prefix, "cli", key_id)
    finally:
        client.close()


class SharedEvents:
    """One replica's end of the events channel; see the module docstring."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.channel, self.revoked_key = _names(link.prefix)
        self.origin = os.urandom(8).hex()
        #: Key ids revoked anywhere.
        self.revoked: set[str] = set()
        #: Called with (deployment id, seconds) when another replica rests a deployment.
        self.on_rest: Callable[[str, float], None] | None = None
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelmix-events", daemon=True)
        self._thread.start()

    def revoke(self, key_id: str) -> None:
        """Revoke ``key_id`` on every replica (this one at once). Blocking: one round trip."""
        self.revoked.add(key_id)
        try:
            _revoke(self.link.client, self.link.prefix, self.origin, key_id)
        except DOWN_ERRORS as exc:
            log.warning("could not tell the other replicas that key %s is revoked: %s", key_id, exc)

    def rest(self, deployment_id: str, seconds: float) -> None:
        """This replica rests a deployment: the others should too (``Health.on_rest``)."""
        if not self.link.up:
            return
        message = orjson.dumps([self.origin, "rest", deployment_id, seconds])
        try:
            self.link.client.publish(self.channel, message)
        except DOWN_ERRORS as exc:
            self.link.lost(exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except DOWN_ERRORS:
                self.subscribed.clear()
                self._stop.wait(self.link.settings.probe_interval)

    def _listen(self) -> None:
        pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            members = self.link.client.smembers(self.revoked_key)
            self.revoked |= {m.decode() for m in members}  # type: ignore[union-attr]
            self.subscribed.set()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "message":
                    self._handle(orjson.loads(message["data"]))
        finally:
            pubsub.close()

    def _handle(self, message: list[Any]) -> None:
        origin, kind, *args = message
        if kind == "revoke":
            self.revoked.add(str(args[0]))
        elif kind == "rest" and origin != self.origin and self.on_rest is not None:
            self.on_rest(str(args[0]), float(args[1]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
