"""``quality/shared_policy.py`` against a real redis-server: what one ledger serves is
published; another ledger adopts it (versions, state, an ``adopt`` event) once; a document
that does not match its version id is refused; Redis down is a warning, not an error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelmix.quality.policy_store import PolicyError, PolicyStore
from modelmix.quality.shared_policy import SharedPolicy
from modelmix.state.config import StateConfig
from tests.state.redis_server import RedisServer, free_port

A = {"routes": [{"name": "auto", "models": ["a"]}]}
B = {"routes": [{"name": "auto", "models": ["b"]}]}


def test_publish_then_adopt_once(tmp_path: Path, redis_server: RedisServer) -> None:
    settings = StateConfig(redis_url=redis_server.url)
    one, two = SharedPolicy(settings), SharedPolicy(settings)
    with PolicyStore(tmp_path / "one.db") as s1, PolicyStore(tmp_path / "two.db") as s2:
        s1.sync_file(A, "file")
        s2.sync_file(A, "file")
        vb = s1.add_version(B, "to b", "test")
        s1.deploy(vb)
        s1.start_canary(s1.add_version(A, "back", "test"), 0.25, "user")
        assert one.publish(s1)
        assert two.adopt_into(s2)  # replica two: serves what one serves
        got, want = s2.state(), s1.state()
        assert got.key == want.key == (vb, want.canary, 0.25, "user")
        assert s2.version(vb).document == B
        assert [e.kind for e in s2.events(1)] == ["adopt"]
        assert not two.adopt_into(s2)  # nothing new published: nothing done
        assert not one.adopt_into(s1)  # its own publication: already served there
        assert [e.kind for e in s1.events(1)] == ["canary_start"]
        # a published document that does not match its id is refused
        value = one.read()
        assert value is not None
        value["at"] = 0.0
        value["versions"][vb]["document"] = A
        redis_server.client().set(one.key, orjson.dumps(value))
        with pytest.raises(PolicyError, match="does not match"):
            two.adopt_into(s2)
    one.close()
    two.close()


def test_redis_down_is_a_warning(tmp_path: Path) -> None:
    shared = SharedPolicy(StateConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    with PolicyStore(tmp_path / "one.db") as store:
        store.sync_file(A, "file")
        assert not shared.publish(store)
        assert shared.read() is None
        assert not shared.adopt_into(store)
    shared.close()
