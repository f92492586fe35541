from __future__ import annotations

from pathlib import Path

import pytest

from modelmix.ledger import keys as keys_mod
from modelmix.ledger.db import Location
from modelmix.ledger.keys import NEGATIVE_TTL, POSITIVE_TTL, KeyStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(keys_mod, "_clock", c)
    return c


def test_create_verify_and_never_store_the_plaintext(tmp_path: Path) -> None:
    db = tmp_path / "k" / "ledger.db"
    store = KeyStore(db)
    assert not store.any_keys()
    info, plaintext = store.create("alice")
    assert plaintext.startswith("mm-") and len(plaintext) >= 40
    assert info.prefix == plaintext[:8]
    assert info.name == "alice" and not info.revoked
    assert store.verify(plaintext) == info
    assert store.verify(plaintext + "x") is None
    assert store.verify("sk-" + plaintext[3:]) is None
    assert store.verify("") is None
    assert store.any_keys()
    store.close()
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    assert plaintext[3:].encode() not in raw  # only the hash is on disk


def test_revoke_by_name_or_id_and_names_are_unique_among_active(ledger_at: Location) -> None:
    store = KeyStore(ledger_at)
    _, key_a = store.create("alice")
    b, key_b = store.create("bob")
    with pytest.raises(ValueError):
        store.create("alice")
    with pytest.raises(ValueError):
        store.create("  ")
    assert store.verify(key_a) is not None  # cached positive...
    assert store.revoke("alice")
    assert store.verify(key_a) is None  # ...but a revoke through the same store is immediate
    assert store.revoke(b.id)
    assert store.verify(key_b) is None
    assert not store.revoke("alice")  # nothing active left by that name
    assert not store.revoke("nobody")
    a2, key_a2 = store.create("alice")  # the name is free again
    assert store.verify(key_a2) == a2
    listed = store.list()
    assert [(k.name, k.revoked) for k in listed] == [
        ("alice", True),
        ("bob", True),
        ("alice", False),
    ]
    assert all(not hasattr(k, "key") for k in listed)


def test_revoke_from_another_process_is_seen_within_the_ttl(
    ledger_at: Location, clock: Clock
) -> None:
    db = ledger_at
    server = KeyStore(db)
    cli = KeyStore(db)
    info, key = cli.create("ci")
    assert server.verify(key) == info
    cli.revoke("ci")
    clock.now += POSITIVE_TTL / 2
    assert server.verify(key) == info  # still cached
    clock.now += POSITIVE_TTL
    assert server.verify(key) is None
    # a key created elsewhere is accepted once the negative entry expires
    _, fresh = cli.create("later")
    server.verify("mm-unknown")
    assert server.verify(fresh) is not None
    assert server.any_keys()  # revoked keys still count: revoking every key must not open up


def test_bad_key_flood_is_answered_from_the_cache(
    ledger_at: Location, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KeyStore(ledger_at)
    store.create("alice")
    calls = 0
    real = store._lookup

    def counting(digest: str) -> keys_mod.KeyInfo | None:
        nonlocal calls
        calls += 1
        return real(digest)

    monkeypatch.setattr(store, "_lookup", counting)
    for _ in range(1_000):
        assert store.verify("mm-guess") is None
    assert calls == 1
    clock.now += NEGATIVE_TTL + 0.01
    assert store.verify("mm-guess") is None
    assert calls == 2
