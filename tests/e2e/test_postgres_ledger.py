"""The real gateway on a PostgreSQL ledger (a throwaway server from the distribution's
binaries, ``tests/pg.py``): the openai and anthropic SDK tests of ``test_openai_sdk.py`` and
``test_anthropic_sdk.py`` run again here, reading their ledger rows from PostgreSQL, and
``modelmix logs`` / ``report`` / ``keys`` read the same database."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import orjson
import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.postgres import PostgresLedger
from modelmix.simulated import Simulator
from tests.conftest import ledger_settings
from tests.e2e.conftest import RunningGateway, e2e_config
from tests.e2e.ledger_rows import attempt_rows, request_row
from tests.e2e.test_anthropic_sdk import (  # noqa: F401  (collected here, on PostgreSQL)
    test_message_with_system_prompt,
    test_streamed_message,
    test_tool_use_round_trip,
)
from tests.e2e.test_openai_sdk import (  # noqa: F401  (collected here, on PostgreSQL)
    test_fallback_after_upstream_failure,
    test_mid_stream_failure_is_an_explicit_error,
    test_plain_answer_with_cost_from_genai_prices,
    test_streaming_with_usage,
    test_tool_call_and_tool_result_round_trip,
    test_unpriced_model_has_no_cost_header,
)
from tests.pg import PgServer


@pytest.fixture(scope="module")
def pg_ledger(pg_server: PgServer) -> str:
    return pg_server.new_database()


@pytest.fixture(scope="module")
def gateway(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory, pg_ledger: str
) -> Iterator[RunningGateway]:
    """The e2e gateway of ``tests/e2e/conftest.py``, its ledger in PostgreSQL."""
    tmp = tmp_path_factory.mktemp("pg-gw")
    config = e2e_config(simulator, tmp, **ledger_settings(pg_ledger, tmp, flush_interval=0.05))
    running = RunningGateway(config, env={})
    assert isinstance(running.gateway.ledger, PostgresLedger)
    yield running
    running.stop()


def test_nothing_lands_in_a_sqlite_file(gateway: RunningGateway) -> None:
    config = gateway.gateway.config
    assert config.ledger_location == config.ledger.url
    assert not config.ledger_path.exists()


def test_logs_and_report_read_the_postgres_ledger(gateway: RunningGateway, pg_ledger: str) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 6+6?"}]
    )
    request_id = raw.headers["x-modelmix-request-id"]
    gateway.flush()
    logs = CliRunner().invoke(main, ["logs", "--db", pg_ledger, "--json", "--limit", "200"])
    assert logs.exit_code == 0, logs.output
    listed = {r["id"]: r for r in orjson.loads(logs.output)}
    mine = listed[request_id]
    assert mine["route"] == "auto" and mine["final_model"] == "gpt-4o-mini"
    # "broken" fails (or is cooling down after the other tests' failures): gpt-4o-mini answers
    chain = [(a["model"], a["status"]) for a in mine["attempts"]]
    assert chain[-1] == ("gpt-4o-mini", "ok") and {m for m, _ in chain[:-1]} <= {"broken"}
    assert Decimal(mine["cost_usd"]) == Decimal(raw.headers["x-modelmix-cost-usd"])
    stored = attempt_rows(pg_ledger, request_id)
    assert [(a["model"], a["status"]) for a in stored] == chain
    assert request_row(pg_ledger, request_id)["n_attempts"] == len(chain)

    report = CliRunner().invoke(main, ["report", "--db", pg_ledger, "--by", "model"])
    assert report.exit_code == 0, report.output
    assert "gpt-4o-mini" in report.output
    total = sum((Decimal(r["cost_usd"]) for r in listed.values()), Decimal(0))
    as_json = CliRunner().invoke(main, ["report", "--db", pg_ledger, "--json", "-"])
    assert as_json.exit_code == 0, as_json.output
    assert Decimal(orjson.loads(as_json.output)["totals"]["cost_usd"]) == total


def test_virtual_keys_in_postgres_lock_the_gateway(
    simulator: Simulator, tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.new_database()
    created = CliRunner().invoke(main, ["keys", "create", "team-a", "--db", url, "--json"])
    assert created.exit_code == 0, created.output
    key = orjson.loads(created.output)["key"]
    config = e2e_config(simulator, tmp_path, **ledger_settings(url, tmp_path, flush_interval=0.05))
    running = RunningGateway(config, env={})
    try:
        ok = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        raw = ok.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 1+1?"}]
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=running.url + "/v1", api_key="mm-wrong", max_retries=0
            ).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        running.flush()
        (info,) = KeyStore(url).list()
        assert request_row(url, raw.headers["x-modelmix-request-id"])["key_id"] == info.id
    finally:
        running.stop()
