"""`modelmix serve` as a user runs it: a subprocess, no config, no keys, no network."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"modelmix serve exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("modelmix serve did not start")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MODELMIX_HOME"
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # the per-user data dir: the ledger's home
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelmix", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, proc)
        yield proc, port, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_zero_key_start_answers_offline_and_stops_without_losing_rows(
    served: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, port, cwd = served
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    assert "[simulated" in (reply.choices[0].message.content or "")
    assert "4" in (reply.choices[0].message.content or "")
    fallback = client.chat.completions.with_raw_response.create(
        model="demo-fallback", messages=[{"role": "user", "content": "hi"}]
    )
    assert fallback.headers["x-modelmix-model"] == "sim-small"

    def one(i: int) -> None:
        client.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": f"request {i}"}]
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))

    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit by SIGTERM)
    assert proc.wait(30) in (0, -signal.SIGTERM)
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    db = cwd / "xdg" / "modelmix" / "ledger.db"
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert count == 202
    assert attempts == 202 + 2  # demo-fallback: two failed attempts on sim-unreliable


def test_logs_and_report_show_the_requests(
    served: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, port, cwd = served
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    for model in ("sim-small", "sim-medium", "sim-large"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    env = {**os.environ, "COLUMNS": "200", "XDG_DATA_HOME": str(cwd / "xdg")}
    logs = subprocess.run(
        [sys.executable, "-m", "modelmix", "logs"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for model in ("sim-small", "sim-medium", "sim-large"):
        assert model in logs
    report = subprocess.run(
        [sys.executable, "-m", "modelmix", "report", "--by", "model"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sim-large" in report
