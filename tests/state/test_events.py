"""Events between replicas over a real Redis: revocations (including ones made while a replica
was disconnected) and deployment cool-downs reaching another replica's ``Health``."""

from __future__ import annotations

import time

from modelmix.engine import Health
from modelmix.state.config import StateConfig
from modelmix.state.events import SharedEvents, publish_revocation
from modelmix.state.link import RedisLink
from tests.state.redis_server import RedisServer


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _events(server: RedisServer) -> SharedEvents:
    link = RedisLink(StateConfig(redis_url=server.url, probe_interval=0.05))
    events = SharedEvents(link)
    assert events.subscribed.wait(10)
    return events


def test_revocations_reach_every_replica(redis_server: RedisServer) -> None:
    one, two = _events(redis_server), _events(redis_server)
    try:
        one.revoke("key-a")
        assert "key-a" in one.revoked  # at once where it was made
        _wait(lambda: "key-a" in two.revoked)
        publish_revocation(StateConfig(redis_url=redis_server.url), "key-b")  # the CLI's way
        _wait(lambda: "key-b" in one.revoked and "key-b" in two.revoked)
        # a replica that starts later loads what was revoked before
        three = _events(redis_server)
        assert {"key-a", "key-b"} <= three.revoked
        three.close()
        three.link.close()
    finally:
        for e in (one, two):
            e.close()
            e.link.close()


def test_revocations_made_during_an_outage_are_loaded_on_reconnection(
    redis_server: RedisServer,
) -> None:
    events = _events(redis_server)
    try:
        redis_server.stop()
        _wait(lambda: not events.subscribed.is_set())
        redis_server.start()  # empty: a revocation made now, while the replica reconnects
        publish_revocation(StateConfig(redis_url=redis_server.url), "key-c")
        _wait(lambda: "key-c" in events.revoked)
    finally:
        events.close()
        events.link.close()


def test_cool_downs_are_shared(redis_server: RedisServer) -> None:
    one, two = _events(redis_server), _events(redis_server)
    h1, h2 = Health(failures=2, seconds=30.0), Health(failures=2, seconds=30.0)
    for events, health in ((one, h1), (two, h2)):
        health.on_rest, events.on_rest = events.rest, health.rest
    try:
        now = time.time()
        h1.failure("dep-x", now)
        assert h1.available("dep-x", now) and h2.available("dep-x", now)
        h1.failure("dep-x", now)  # the second failure in a row: dep-x rests 30 s
        assert not h1.available("dep-x", now)
        _wait(lambda: not h2.available("dep-x", time.time()))
        assert h2.available("dep-x", time.time() + 31)
        assert h1.available("dep-y", now) and h2.available("dep-y", now)
    finally:
        for e in (one, two):
            e.close()
            e.link.close()
