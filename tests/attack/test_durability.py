"""Durability under signals (issue 14, finding 9), against ``modelmix serve`` in a subprocess:
SIGTERM with streams that would run for minutes ends them with an error event at the shutdown
deadline and writes their rows; with ``ledger.synchronous`` a SIGKILL loses no answered row."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.attack.fault_upstream import FaultUpstream
from tests.e2e.test_serve_command import free_port, wait_ready


def _serve(tmp: Path, upstream: FaultUpstream, models: list[str], **extra: Any) -> Any:
    port = free_port()
    config = {
        "models": [
            {
                "name": m,
                "provider": "openai",
                "model": m,
                "base_url": upstream.base_url,
                "price": {"input": "1", "output": "10"},
            }
            for m in models
        ],
        "ledger": {"path": str(tmp / "ledger.db")},
        "engine": {"timeouts": {"first_token": 10, "total": 600}},
        **extra,
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    # no access log: stderr is a pipe nobody reads under load
    args = ["serve", "--config", "c.yaml", "--no-access-log", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelmix", *args],
        cwd=tmp,
        env={k: v for k, v in os.environ.items() if k != "MODELMIX_HOME"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_ready(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def _rows(tmp: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(tmp / "ledger.db")
    try:
        return conn.execute("SELECT id, status FROM requests").fetchall()
    finally:
        conn.close()


def test_sigterm_ends_endless_streams_at_the_deadline_and_writes_their_rows(
    faults: FaultUpstream, tmp_path: Path
) -> None:
    model = "endless-drip-ans100000"  # 250 s of stream
    proc, url = _serve(tmp_path, faults, [model], server={"shutdown_deadline": 1.5})
    answers: list[bytes] = []
    started = threading.Barrier(5)

    def stream() -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
            chunks = r.iter_bytes()
            first = next(chunks)
            started.wait()
            answers.append(first + b"".join(chunks))

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - t0
    for t in threads:
        t.join(10)
    assert took < 10, f"stop took {took:.1f} s with a 1.5 s deadline"
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert len(answers) == 4
    for text in answers:
        assert b"shutting down" in text and not text.rstrip().endswith(b"[DONE]")
    rows = _rows(tmp_path)
    assert len(rows) == 4 and all(status != "ok" for _, status in rows)


def test_synchronous_ledger_loses_no_answered_row_to_sigkill(
    faults: FaultUpstream, tmp_path: Path
) -> None:
    proc, url = _serve(
        tmp_path,
        faults,
        ["quick-ans5"],
        ledger={"path": str(tmp_path / "ledger.db"), "synchronous": True, "flush_interval": 5},
    )
    answered: list[str] = []
    stop = threading.Event()

    def client() -> None:
        body = {"model": "quick-ans5", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post(url + "/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    answered.append(r.headers["x-modelmix-request-id"])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    while len(answered) < 200:
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no shutdown at all
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    written = {rid for rid, _ in _rows(tmp_path)}
    missing = [rid for rid in answered if rid not in written]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests lost"
