"""The live routing-policy version across replicas: two ``modelmix serve`` replicas, on one
PostgreSQL ledger or on a SQLite ledger each with one Redis; a ``modelmix policy`` deploy,
canary and promote made with replica 0's config is served by both replicas within the poll
interval (each replica's policy watcher reads the shared ``policy_state`` row, or the policy
published in Redis, every ``quality.policy.poll_seconds``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import openai
import pytest

from tests.state.redis_server import RedisServer
from tests.state.replicas import CLI, PROMPT, Replicas, env

POLL = 0.5  # quality.policy.poll_seconds
SLACK = 2.0  # a request's own latency on a loaded 2-core machine, and the CLI's exit


def _sim(name: str, upstream: str) -> dict[str, object]:
    return {
        "name": name,
        "provider": "openai",
        "base_url": "builtin:simulated",
        "model": upstream,
        "price": {"input": 10, "output": 20},
    }


def _served(port: int, key: str, n: int) -> set[str]:
    """The models (``x-modelmix-model``) that answered ``n`` requests for the route ``auto``."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    try:
        return {
            client.chat.completions.with_raw_response.create(
                model="auto",
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=5,
            ).headers["x-modelmix-model"]
            for _ in range(n)
        }
    finally:
        client.close()


def _policy(replicas: Replicas, *args: str) -> str:
    done = subprocess.run(
        [*CLI, "policy", *args, "--config", str(replicas.configs[0])],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _until_all_serve(replicas: Replicas, want: set[str], n: int = 4) -> float:
    """Seconds until every replica answers only with ``want`` (``n`` requests each)."""
    started = time.monotonic()
    pending = set(replicas.ports)
    while pending:
        for port in sorted(pending):
            if _served(port, replicas.key["key"], n) <= want:
                pending.discard(port)
        assert time.monotonic() - started < POLL + SLACK, f"replicas {pending} still serve old"
        time.sleep(0.05)
    return time.monotonic() - started


def _replicas(tmp_path: Path, redis_server: RedisServer, ledger: dict[str, object]) -> Replicas:
    return Replicas(
        tmp_path,
        2,
        {
            "ledger": {"flush_interval": 0.05, **ledger},
            "state": {"redis_url": redis_server.url},
            "models": [_sim("a", "sim-small"), _sim("b", "sim-large")],
            "routes": [{"name": "auto", "models": ["a"]}],
            "quality": {"policy": {"poll_seconds": POLL}},
        },
        [],
    )


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Replicas:
    return _replicas(tmp_path, redis_server, {"url": pg_url})


@pytest.fixture
def sqlite_replicas(tmp_path: Path, redis_server: RedisServer) -> Replicas:
    """A SQLite ledger each (``<dir>/data/ledger.db``), one Redis."""
    return _replicas(tmp_path, redis_server, {})


def test_policy_change_reaches_every_replica_within_the_poll_interval(
    replicas: Replicas, tmp_path: Path
) -> None:
    replicas.start()
    try:
        _deploy_canary_promote(replicas, tmp_path)
    finally:
        replicas.stop()


def test_policy_over_redis_reaches_replicas_with_their_own_ledgers(
    sqlite_replicas: Replicas, tmp_path: Path
) -> None:
    """The change is made on replica 0's ledger only; replica 1 learns it from Redis and
    records it in its own ledger (``adopt`` events), and a rollback goes the same way."""
    replicas = sqlite_replicas
    replicas.start()
    try:
        _deploy_canary_promote(replicas, tmp_path)
        assert "published to the replicas" in _policy(replicas, "rollback")
        rolled_back = _until_all_serve(replicas, {"b"})
    finally:
        replicas.stop()
    print(f"rollback served by both after {rolled_back:.2f} s")
    logs = []
    for cfg in replicas.configs:
        log = subprocess.run(
            [*CLI, "policy", "log", "--config", str(cfg)], env=env(), capture_output=True, text=True
        )
        assert log.returncode == 0, log.stderr
        logs.append(log.stdout)
    assert "adopt" not in logs[0], logs[0]  # made there: nothing to adopt
    assert logs[1].count("adopt") >= 4, logs[1]  # deploy, canary, promote, rollback


def _deploy_canary_promote(replicas: Replicas, tmp_path: Path) -> None:
    to_b = tmp_path / "to_b.yaml"
    to_b.write_text("routes:\n  - {name: auto, models: [b]}\n")
    to_a = tmp_path / "to_a.yaml"
    to_a.write_text("routes:\n  - {name: auto, models: [a]}\n")
    assert all(_served(p, replicas.key["key"], 4) == {"a"} for p in replicas.ports)
    _policy(replicas, "deploy", str(to_b), "-m", "to b")
    deployed = _until_all_serve(replicas, {"b"})
    # a canary started through replica 0's config: both replicas split the traffic
    _policy(replicas, "canary", str(to_a), "--share", "0.5", "-m", "back to a")
    started = time.monotonic()
    for port in replicas.ports:
        while _served(port, replicas.key["key"], 8) != {"a", "b"}:
            assert time.monotonic() - started < POLL + SLACK, "canary not served"
    _policy(replicas, "promote")
    promoted = _until_all_serve(replicas, {"a"})
    print(f"deploy served by both after {deployed:.2f} s, promote after {promoted:.2f} s")
