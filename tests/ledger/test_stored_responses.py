"""The Responses API's stored responses (ledger/stored_responses.py) on both ledger backends:
conversations rebuilt from the chain of previous responses, scoped by key, a broken chain
reported, a replaced row, and a database from a newer modelmix refused."""

from __future__ import annotations

from typing import Any

import pytest

from modelmix.errors import GatewayError
from modelmix.ledger import pg_schema
from modelmix.ledger.db import Location
from modelmix.ledger.opening import open_ledger
from modelmix.ledger.schema import SchemaError
from modelmix.ledger.stored_responses import ResponseStore

ONE = [{"role": "user", "content": "a"}, {"type": "message", "role": "assistant"}]
TWO = [{"role": "user", "content": "b"}]
THREE = [{"role": "user", "content": "c"}, {"type": "function_call", "call_id": "x"}]


def _chain(store: ResponseStore, key: str | None = "k") -> None:
    store.save({"id": "resp_1"}, ONE, request_id="1", key_id=key, previous=None)
    store.save({"id": "resp_2"}, TWO, request_id="2", key_id=key, previous="resp_1")
    store.save({"id": "resp_3"}, THREE, request_id="3", key_id=key, previous="resp_2")


def _missing(store: ResponseStore, response_id: str, key_id: str | None) -> Any:
    with pytest.raises(GatewayError) as info:
        store.conversation(response_id, key_id)
    assert info.value.status == 404 and info.value.param == "previous_response_id"
    return info.value


def test_store_walks_the_chain_and_scopes_by_key(ledger_at: Location) -> None:
    store = ResponseStore(ledger_at)
    try:
        _chain(store)
        assert store.conversation("resp_3", "k") == [*ONE, *TWO, *THREE]
        assert store.conversation("resp_1", "k") == ONE
        assert store.get("resp_2", "k") == {"id": "resp_2"}
        assert store.get("resp_2", "other") is None
        _missing(store, "resp_3", None)  # another caller's conversation is not found
        _missing(store, "resp_9", "k")
        assert not store.delete("resp_1", "other")
        assert store.delete("resp_1", "k") and store.get("resp_1", "k") is None
        # a broken chain is reported (naming the missing response), not silently cut
        assert "resp_1" in _missing(store, "resp_3", "k").message
    finally:
        store.close()


def test_input_items_are_the_rows_items_before_its_output(ledger_at: Location) -> None:
    store = ResponseStore(ledger_at)
    try:
        output = [{"type": "message", "role": "assistant", "content": []}]
        items = [*THREE, *output]
        store.save(
            {"id": "resp_i", "output": output}, items, request_id="i", key_id="k", previous=None
        )
        assert store.input_items("resp_i", "k") == THREE
        assert store.input_items("resp_i", "other") is None  # another key's: not found
        assert store.input_items("resp_nope", "k") is None
    finally:
        store.close()


def test_keyless_responses_are_anyones_and_a_save_replaces(ledger_at: Location) -> None:
    store = ResponseStore(ledger_at)
    try:
        _chain(store, key=None)
        assert store.conversation("resp_3", "someone") == [*ONE, *TWO, *THREE]
        store.save({"id": "resp_2", "v": 2}, THREE, request_id="2", key_id=None, previous=None)
        assert store.get("resp_2", None) == {"id": "resp_2", "v": 2}
        assert store.conversation("resp_3", None) == [*THREE, *THREE]
    finally:
        store.close()


def test_store_refuses_a_newer_schema(ledger_at: Location, monkeypatch: pytest.MonkeyPatch) -> None:
    ResponseStore(ledger_at).close()
    db = open_ledger(ledger_at)
    db.execute("UPDATE responses_schema_version SET version = 99")
    db.close()
    monkeypatch.setattr(pg_schema, "_MIGRATED", set())  # PostgreSQL: check the schema again
    with pytest.raises(SchemaError, match="stored-responses schema version 99 is newer"):
        ResponseStore(ledger_at)
