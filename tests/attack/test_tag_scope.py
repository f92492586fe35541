"""Tag budgets and keys (issue 14, finding 3): a key may spend from a tag's budget only if the
tag is its own or one it is allowed to set; any other key sending the tag cannot drain it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from modelmix.budgets.tag_scope import scoped_tags
from modelmix.ledger.keys import KeyInfo
from modelmix.ledger.records import RequestRecord
from tests.attack.conftest import HardenedGateway, fault_config
from tests.attack.fault_upstream import FaultUpstream

ATLAS = {"project:atlas": [{"kind": "hard", "period": "total", "limit_usd": "0.001"}]}


def _ask(gw: HardenedGateway, key: str, tag: str | None = "atlas") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if tag:
        headers["x-modelmix-tag-project"] = tag
    body = {"model": "scope-ans20", "messages": [{"role": "user", "content": "hi"}]}
    body["max_tokens"] = 15
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_a_key_without_the_tag_cannot_drain_its_budget(
    faults: FaultUpstream, tmp_path: Path
) -> None:
    config = fault_config(faults, tmp_path, "scope-ans20", budgets={"tags": ATLAS})
    with HardenedGateway(config) as gw:
        keys = gw.gateway.keys
        assert keys is not None
        _, stranger = keys.create("stranger")
        _, owner = keys.create("atlas-team", tags=["project:atlas"])
        _, member = keys.create("atlas-dev", allowed_tags=["project:*"])
        for _ in range(10):  # far more than the budget holds
            assert _ask(gw, stranger).status_code == 200
        (budget,) = gw.gateway.accounting.status()
        assert budget["spent_usd"] == 0  # the stranger's spend never counted
        assert _ask(gw, owner, tag=None).status_code == 200  # the owner is not locked out
        assert _ask(gw, member).status_code == 200
        (budget,) = gw.gateway.accounting.status()
        assert budget["spent_usd"] > 0
        # allowed keys spend from it, and are refused once it is gone
        statuses = [_ask(gw, member).status_code for _ in range(10)]
        assert 429 in statuses


def test_scoping_keeps_unbudgeted_tags_and_says_what_it_dropped() -> None:
    key = KeyInfo("key_1", "k", 0.0, False, "mm-x", tags=("team:a",), allowed_tags=("project:*",))
    record = RequestRecord(id="r", started_at=0.0, api="openai", requested_model="m")
    tags = ("team:a", "project:x", "env:prod", "user:bob")
    out = scoped_tags(key, tags, {"project:x", "user:bob", "team:a"}, record)
    assert out == ("team:a", "project:x", "env:prod")
    assert record.decision["tags_not_allowed"] == ["user:bob"]


def test_allowed_tags_survive_the_store_and_the_admin_api(tmp_path: Any) -> None:
    from modelmix.ledger.keys import KeyStore

    store = KeyStore(tmp_path / "l.db")
    info, _ = store.create("k", allowed_tags=["project:*"])
    assert store.get("k").allowed_tags == ("project:*",)  # type: ignore[union-attr]
    store.update("k", allowed_tags=["env:*"])
    assert store.get(info.id).allowed_tags == ("env:*",)  # type: ignore[union-attr]
    assert store.get(info.id).to_dict()["allowed_tags"] == ["env:*"]  # type: ignore[union-attr]
    store.close()
