"""Several ``modelmix serve`` processes (replicas) on their own ports and data dirs, sharing
one Redis and either a SQLite ledger each or one PostgreSQL ledger (``ledger.url`` in the
config): what the multi-replica tests drive with the real openai SDK."""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import orjson
import yaml

from tests.e2e.test_serve_command import free_port, wait_ready

ADMIN = "mm-admin-replicas-test"
SIM_MODEL = {
    "name": "sim-small",
    "provider": "openai",
    "base_url": "builtin:simulated",
    "price": {"input": 10, "output": 20},
}
CLI = (sys.executable, "-m", "modelmix")
PROMPT = [{"role": "user", "content": "Describe the water cycle in a few sentences."}]


def env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        "MM_ADMIN": ADMIN,
    }


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"authorization": f"Bearer {ADMIN}"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


class Replicas:
    """``n`` replicas of one config; a key made once, then copied into every replica's SQLite
    ledger, or found by every replica in the shared PostgreSQL ledger (``ledger.url``)."""

    def __init__(
        self, tmp: Path, n: int, config: dict[str, Any], key_args: list[str], n_keys: int = 1
    ) -> None:
        self.tmp = tmp
        self.dirs = [tmp / f"replica{i}" for i in range(n)]
        self.configs: list[Path] = []
        for d in self.dirs:
            d.mkdir()
            path = d / "modelmix.yaml"
            path.write_text(
                yaml.safe_dump(
                    {
                        "data_dir": str(d / "data"),
                        "server": {"admin_key_env": "MM_ADMIN"},
                        "models": [SIM_MODEL],
                        **config,
                    }
                )
            )
            self.configs.append(path)
        self.keys: list[dict[str, Any]] = []
        cfg0 = str(self.configs[0])
        for i in range(n_keys):
            made = subprocess.run(
                [*CLI, "keys", "create", f"load{i}", "--json", "--config", cfg0, *key_args],
                env=env(),
                capture_output=True,
                text=True,
                check=True,
            )
            self.keys.append(orjson.loads(made.stdout))
        self.key = self.keys[0]
        self.pg_url: str | None = config.get("ledger", {}).get("url")
        for d in self.dirs[1:] if self.pg_url is None else ():
            (d / "data").mkdir()
            shutil.copy(self.dirs[0] / "data" / "ledger.db", d / "data" / "ledger.db")
        self.ports = [free_port() for _ in self.dirs]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for cfg, port in zip(self.configs, self.ports, strict=True):
            self.procs.append(
                subprocess.Popen(
                    # no access log: stderr is a pipe nobody reads; a full pipe blocks the server
                    [*CLI, "serve", "--config", str(cfg), "--port", str(port), "--no-access-log"],
                    env=env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        for port, proc in zip(self.ports, self.procs, strict=True):
            wait_ready(port, proc, timeout=120)
            deadline = time.monotonic() + 30
            while get(port, "/ready")[0] != 200:
                assert time.monotonic() < deadline, "replica not ready"
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr is not None:
                proc.stderr.close()
        self.procs = []

    def kill(self, i: int) -> None:
        """SIGKILL replica ``i``: no flush, no settlement, nothing graceful."""
        self.procs[i].kill()
        self.procs[i].wait(10)

    def rows(self) -> list[dict[str, Any]]:
        """Every replica's ledger rows (call after ``stop``: the ledgers are flushed)."""
        if self.pg_url is not None:
            import psycopg
            from psycopg.rows import dict_row

            with psycopg.connect(self.pg_url, row_factory=dict_row) as conn:
                return list(conn.execute("SELECT * FROM requests ORDER BY started_at, id"))
        out: list[dict[str, Any]] = []
        for d in self.dirs:
            conn = sqlite3.connect(d / "data" / "ledger.db")
            conn.row_factory = sqlite3.Row
            out += [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY started_at, id")]
            conn.close()
        return out

    def clients(self, key: str | None = None) -> list[openai.AsyncOpenAI]:
        return [
            openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1",
                api_key=key or self.key["key"],
                max_retries=0,
            )
            for port in self.ports
        ]


async def _call(client: openai.AsyncOpenAI) -> int | str:
    """One request: 200 or ``"<status>:<error code>"``."""
    return (await traced_call(client))[0]


async def traced_call(client: openai.AsyncOpenAI) -> tuple[int | str, str | None]:
    """One request: (200 or ``"<status>:<error code>"``, the gateway's request id);
    ``("connection", None)`` when the replica cannot be reached."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="sim-small",
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=30,
        )
        return 200, raw.headers.get("x-modelmix-request-id")
    except openai.APIStatusError as exc:
        return f"{exc.status_code}:{exc.code}", exc.response.headers.get("x-modelmix-request-id")
    except openai.APIConnectionError:
        return "connection", None


async def load(
    replicas: Replicas, n: int, concurrency: int = 32, key: str | None = None
) -> list[int | str]:
    """``n`` requests spread round-robin over the replicas, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    clients = replicas.clients(key)

    async def one(i: int) -> int | str:
        async with gate:
            return await _call(clients[i % len(clients)])

    try:
        return list(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        for client in clients:
            await client.close()


async def load_until(
    replicas: Replicas, stop: asyncio.Event, concurrency: int = 32
) -> list[int | str]:
    """Requests ``concurrency`` at a time, round-robin, until ``stop`` is set."""
    return [o.status for o in await traced_load_until(replicas, stop, concurrency)]


@dataclass(frozen=True)
class Outcome:
    """One request as its client saw it."""

    replica: int
    status: int | str
    request_id: str | None
    at: float  # time.monotonic() when the client had the answer (or the error)


async def traced_load_until(
    replicas: Replicas, stop: asyncio.Event, concurrency: int = 32
) -> list[Outcome]:
    """Like ``load_until``, keeping each answer's replica, request id and time; a replica that
    cannot be reached is left out of the rotation from then on (as a load balancer would)."""
    out: list[Outcome] = []
    clients = replicas.clients()
    down: set[int] = set()

    async def worker(i: int) -> None:
        while not stop.is_set():
            live = [j for j in range(len(clients)) if j not in down]
            j = live[i % len(live)]
            status, request_id = await traced_call(clients[j])
            out.append(Outcome(j, status, request_id, time.monotonic()))
            if status == "connection":
                down.add(j)
            i += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        for client in clients:
            await client.close()
    return out
