from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from modelmix.cli import main
from modelmix.cli.keys_cmds import parse_budget
from modelmix.ledger.keys import KeyStore


def test_keys_cli_lifecycle(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")

    def run(args: list[str]) -> Result:  # the real `modelmix keys`
        return CliRunner().invoke(main, ["keys", *args])

    res = run(
        [
            "create",
            "svc",
            "--db",
            db,
            "--owner",
            "ana",
            "--team",
            "search",
            "--tag",
            "prod",
            "--tag",
            "project:x",
            "--model",
            "cheap",
            "--budget",
            "hard:month:100",
            "--budget",
            "paced:day:5",
            "--rpm",
            "60",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    created = orjson.loads(res.stdout)
    key = created["key"]
    store = KeyStore(db)
    info = store.verify(key)
    assert info is not None and info.team == "search" and info.tags == ("prod", "project:x")
    assert [(b.kind, b.period, b.limit_usd) for b in info.budgets] == [
        ("hard", "month", Decimal("100")),
        ("paced", "day", Decimal("5")),
    ]
    assert info.rate_limit is not None and info.rate_limit.rpm == 60

    res = run(["list", "--db", db])
    assert res.exit_code == 0 and "svc" in res.output and "hard:month:100" in res.output
    assert key not in res.output

    res = run(["update", "svc", "--db", db, "--tpm", "5000", "--team", "", "--clear-tags"])
    assert res.exit_code == 0, res.output
    updated = store.get("svc")
    assert updated is not None and updated.team is None and updated.tags == ()
    assert updated.rate_limit is not None and (updated.rate_limit.rpm, updated.rate_limit.tpm) == (
        60,
        5000,
    )

    res = run(["show", "svc", "--db", db])
    assert res.exit_code == 0 and "60 req/min, 5000 tok/min" in res.output

    res = run(["rotate", "svc", "--db", db])
    assert res.exit_code == 0, res.output
    new_key = next(line for line in res.stdout.splitlines() if line.startswith("mm-"))
    fresh = KeyStore(db)  # (a long-lived store would see the rotation within its cache TTL)
    assert fresh.verify(key) is None and fresh.verify(new_key) is not None

    res = run(["revoke", "svc", "--db", db])
    assert res.exit_code == 0 and KeyStore(db).verify(new_key) is None
    for args in (["revoke", "svc"], ["rotate", "svc"], ["update", "svc", "--team", "x"]):
        res = run([*args, "--db", db])
        assert res.exit_code != 0 and "no active key" in res.output


def test_bad_budget_option_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["keys", "create", "x", "--db", str(tmp_path / "l.db"), "--budget", "hard:week:5"]
    )
    assert res.exit_code == 2 and "period must be" in res.output
    assert parse_budget("soft:2025-06-01..2025-07-01:12.5")["period"] == "custom"
