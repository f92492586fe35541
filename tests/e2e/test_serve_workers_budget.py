"""`modelmix serve --workers 2`: two processes, one budget (the shared counters file), on a
SQLite and on a PostgreSQL ledger.

The key is made with the real `modelmix keys` command, the load comes from the async openai
SDK over many connections (the kernel spreads them over both workers), and the spend is read
back with `modelmix report` and from each worker's admin API.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import openai
import orjson
import yaml

from modelmix.ledger.db import Location, is_postgres
from tests.e2e.test_serve_command import free_port, wait_ready

ADMIN = "mm-admin-workers-test"
LIMIT = Decimal("0.01")


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection
    conn.request("GET", path, headers={"authorization": f"Bearer {ADMIN}"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_two_workers_share_one_hard_budget(tmp_path: Path, ledger_at: Location) -> None:
    config = {
        "data_dir": str(tmp_path / "data"),
        # SQLite: <data_dir>/ledger.db; PostgreSQL: both workers write the same database
        **({"ledger": {"url": ledger_at}} if is_postgres(ledger_at) else {}),
        "server": {"admin_key_env": "MM_ADMIN"},
        "models": [
            {
                "name": "sim-small",
                "provider": "openai",
                "base_url": "builtin:simulated",
                "price": {"input": 10, "output": 20},
            }
        ],
    }
    cfg = tmp_path / "modelmix.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "MM_ADMIN": ADMIN,
    }
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelmix",
            "keys",
            "create",
            "shared",
            "--config",
            str(cfg),
            "--budget",
            f"hard:total:{LIMIT}",
            "--team",
            "load",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = orjson.loads(made.stdout)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelmix",
            "serve",
            "--workers",
            "2",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--no-access-log",  # stderr is a pipe nobody reads under load
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both workers answer /ready
            if all(_get(port, "/ready")[0] == 200 for _ in range(8)):
                break
            time.sleep(0.2)
        prompt = [{"role": "user", "content": "Describe the water cycle in a few sentences."}]

        async def load() -> list[bool]:
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key["key"], max_retries=0
            )

            async def one() -> bool:
                try:
                    await client.chat.completions.create(
                        model="sim-small",
                        messages=prompt,
                        max_tokens=30,  # type: ignore[arg-type]
                    )
                    return True
                except openai.RateLimitError as exc:
                    assert exc.code == "budget_exceeded"
                    return False

            out: list[bool] = []
            try:
                for _ in range(4):
                    out += await asyncio.gather(*(one() for _ in range(25)))
            finally:
                await client.close()
            return out

        outcomes = asyncio.run(load())
        admitted = outcomes.count(True)
        assert 0 < admitted < len(outcomes)
        # every worker reads the same counters: the same spend, whichever one answers
        seen = set()
        for _ in range(12):
            status, body = _get(port, "/admin/budgets")
            assert status == 200
            (row,) = orjson.loads(body)["data"]
            seen.add((row["spent_usd"], row["reserved_usd"]))
        assert len(seen) == 1
        ((spent_text, reserved_text),) = seen
        assert Decimal(reserved_text) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelmix",
            "report",
            "--config",
            str(cfg),
            "--by",
            "key",
            "--json",
            "-",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    (by_key,) = orjson.loads(report.stdout)["by"]["key"]
    assert by_key["group"] == key["id"] and by_key["requests"] == len(outcomes)
    spent = Decimal(by_key["cost_usd"])
    assert spent == Decimal(spent_text)  # the live counters agree with the ledger
    # The simulator answers within max_tokens and the estimate counts the prompt high, so no
    # admitted call cost more than it reserved: nothing in flight could push past the limit.
    assert spent <= LIMIT
    per_call = spent / admitted
    assert spent > LIMIT - 3 * per_call  # and the budget was used, not refused early
    print(f"2 workers: admitted {admitted} of {len(outcomes)}, spent {spent} of {LIMIT}")
