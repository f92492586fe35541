"""A newcomer's first hour (issue 12): ``modelmix serve`` as a subprocess with no config says
what it serves and where, logs one line per request, opens the dashboard on loopback without
a key, turns keys on with ``MODELMIX_ADMIN_KEY`` alone; ``modelmix logs`` run from another
directory finds the gateway's ledger and says why a request failed and what it asked for."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from tests.e2e import plain_http as httpx
from tests.e2e.test_serve_command import free_port, wait_ready

ACCESS = re.compile(
    r"modelmix\.access: (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d+) "
    r"model=(?P<model>\S+) (?P<ms>\d+\.\d)ms id=(?P<id>\S+)$"
)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    data: Path
    env: dict[str, str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        """The first console line (seen so far or arriving) matching ``pattern``."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        index = 0
        while True:
            while index < len(self.seen):
                m = regex.search(self.seen[index])
                index += 1
                if m:
                    return m
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}") from None


def _serve(tmp: Path, *args: str, **extra_env: str) -> Served:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("MODELMIX_HOME", "MODELMIX_ADMIN_KEY")
    }
    env.update({"XDG_DATA_HOME": str(tmp / "xdg"), "COLUMNS": "200", **extra_env})
    cwd = tmp / "project"
    cwd.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelmix", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc, port, tmp / "xdg" / "modelmix", env)
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            served.lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    wait_ready(port, proc)  # type: ignore[arg-type]
    return served


def _stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGINT)
        try:
            served.proc.wait(30)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(10)


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _serve(tmp_path_factory.mktemp("newcomer"))
    yield served
    _stop(served)


def test_serve_says_what_it_serves_and_where(keyless: Served) -> None:
    for name in ("sim-small", "sim-medium", "sim-large", "sim-unreliable", "sim-embed"):
        line = keyless.wait_for(rf"^\s+{name}\s").string
        assert "SIMULATED" in line
    assert "embedding" in keyless.wait_for(r"^\s+sim-embed\s").string
    keyless.wait_for(r"^routes:$")
    keyless.wait_for(r"^\s+auto\s+fallback\s+sim-small, sim-medium, sim-large$")
    keyless.wait_for(r"^\s+demo-fallback\s+fallback\s+sim-unreliable, sim-small$")
    keyless.wait_for(rf"^dashboard: http://127\.0\.0\.1:{keyless.port}/ui$")
    keyless.wait_for(r"^keys: off .*open on loopback without a key; set \$MODELMIX_ADMIN_KEY")
    ledger = keyless.wait_for(r"^ledger: (\S+) ").group(1)
    assert Path(ledger) == (keyless.data / "ledger.db").resolve()
    keyless.wait_for(r"^access log: on \(--no-access-log")


def test_one_access_log_line_per_request(keyless: Served) -> None:
    client = openai.OpenAI(base_url=keyless.url + "/v1", api_key="none", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    rid = raw.headers["x-modelmix-request-id"]
    line = keyless.wait_for(rf"id={rid}$")
    m = ACCESS.search(line.string)
    assert m is not None, line.string
    assert (m["method"], m["path"], m["status"], m["model"]) == (
        "POST",
        "/v1/chat/completions",
        "200",
        raw.headers["x-modelmix-model"],
    )
    assert float(m["ms"]) > 0
    httpx.get(keyless.url + "/health")
    assert ACCESS.search(keyless.wait_for(r"GET /health 200 model=- ").string)


def test_dashboard_opens_on_loopback_without_a_key(keyless: Served) -> None:
    page = httpx.get(keyless.url + "/ui")
    assert page.status_code == 200
    assert "Enter the admin key" not in page.text
    assert httpx.get(keyless.url + "/ui/api/summary").status_code == 200
    # a page reached under another host name (DNS rebinding) is not "loopback"
    rebound = httpx.get(keyless.url + "/ui", headers={"host": "attacker.example:80"})
    assert rebound.status_code == 401


def test_logs_from_anywhere_say_why_a_request_failed(keyless: Served, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=keyless.url + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hello"}]
        )
    rid = missing.value.response.headers["x-modelmix-request-id"]
    keyless.wait_for(rf"id={rid}$")
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    deadline = time.monotonic() + 10
    while True:  # the ledger writer flushes in the background
        out = subprocess.run(
            [sys.executable, "-m", "modelmix", "logs", "--failed"],
            cwd=elsewhere,
            env=keyless.env,
            capture_output=True,
            text=True,
        )
        if rid in out.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert out.returncode == 0, out.stderr
    assert f"{rid} failed (HTTP 404): The model 'no-such-model' does not exist" in out.stdout
    detail = subprocess.run(
        [sys.executable, "-m", "modelmix", "logs", rid],
        cwd=elsewhere,
        env=keyless.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "FAILED (HTTP 404)" in detail
    assert "asked:     model 'no-such-model', via the openai API, not streamed, no key" in detail
    assert "why:       The model 'no-such-model' does not exist" in detail
    assert "attempts:  none (refused before any call)" in detail


def test_admin_key_alone_turns_keys_on_and_access_log_can_be_off(tmp_path: Path) -> None:
    served = _serve(tmp_path, "--no-access-log", MODELMIX_ADMIN_KEY="sk-admin-newcomer")
    try:
        served.wait_for(r"^keys: on \(admin key from \$MODELMIX_ADMIN_KEY\)")
        served.wait_for(r"^access log: off$")
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        anonymous = httpx.post(served.url + "/v1/chat/completions", json=body)
        assert anonymous.status_code == 401
        admin = httpx.post(
            served.url + "/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-admin-newcomer"},
        )
        assert admin.status_code == 200
        assert httpx.get(served.url + "/ui").status_code == 401
    finally:
        _stop(served)
    assert not any(ACCESS.search(line) for line in served.seen + list(served.lines.queue))
