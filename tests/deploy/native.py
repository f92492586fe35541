"""deploy/compose.yaml's topology as host processes (no Docker on the development machine).

Each service runs from the files the compose file names, rewritten only where a container name
or port must become a loopback address: PostgreSQL 15 with the postgres service's user,
password and database; redis-server with the redis service's ``command``; the two gateways with
the Dockerfile's CMD and the compose file's environment on deploy/modelmix.yaml; nginx on
deploy/nginx.conf. ``rewrite_config`` and ``rewrite_nginx`` return the changed lines so the
test asserts that nothing else differs.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.e2e.test_serve_command import free_port
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX = Path("/usr/sbin/nginx")
MOUNTED_CONFIG = "/etc/modelmix/modelmix.yaml"
#: What the test sets for the compose file's ${...} variables (the simulated upstream ignores keys).
COMPOSE_VARS = {
    "MODELMIX_ADMIN_KEY": "mm-admin-compose-native",
    "OPENAI_API_KEY": "sk-simulated",
    "ANTHROPIC_API_KEY": "sk-ant-simulated",
}


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def changed_lines(before: str, after: str) -> list[str]:
    """The ``-``/``+`` lines of a diff (what a rewrite removed and added)."""
    diff = difflib.ndiff(before.splitlines(), after.splitlines())
    return [line for line in diff if line[:2] in ("- ", "+ ")]


def _resolve(value: str) -> str:
    """Compose's ``${NAME:?message}`` and ``${NAME:-default}`` from ``COMPOSE_VARS``."""

    def one(m: re.Match[str]) -> str:
        name, op, rest = m.groups()
        if name in COMPOSE_VARS:
            return COMPOSE_VARS[name]
        assert op == ":-", f"compose needs ${name}: {rest}"
        return str(rest)

    return re.sub(r"\$\{(\w+)(:[?-])?([^}]*)\}", one, value)


def gateway_env(data_dir: Path) -> dict[str, str]:
    """The gateway service's environment (compose) and image environment (Dockerfile ENV)."""
    service = compose()["services"]["gateway1"]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k[:2] != "PG"}
    env |= {k: _resolve(str(v)) for k, v in service["environment"].items()}
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, value in re.findall(r"^ENV (\w+)=(\S+)$", dockerfile, re.M):
        assert (name, value) == ("MODELMIX_HOME", "/data"), "an ENV line the test does not map"
        env[name] = str(data_dir)  # the /data volume
    return env


def gateway_args(config: Path, port: int) -> list[str]:
    """The Dockerfile's CMD with the mounted config path, host and port made local."""
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)[0])
    assert "ENTRYPOINT" not in (ROOT / "Dockerfile").read_text()
    local = {MOUNTED_CONFIG: str(config), "0.0.0.0": "127.0.0.1", "4000": str(port)}
    args = [local.get(a, a) for a in cmd]
    assert sum(a != b for a, b in zip(args, cmd, strict=True)) == 3
    return [sys.executable, "-m", "modelmix", *args[1:]]  # `modelmix` = the installed script


def rewrite_config(redis_url: str, pg_host: str, sim_url: str) -> tuple[str, list[str]]:
    """deploy/modelmix.yaml with the redis and postgres hosts and the vendors' base URLs local."""
    text = (DEPLOY / "modelmix.yaml").read_text()
    out = text.replace("redis://redis:6379/0", redis_url)
    out = out.replace("@postgres:5432/", f"@{pg_host}/")
    out = out.replace(
        "    provider: openai\n", f"    provider: openai\n    base_url: {sim_url}/openai/v1\n"
    )
    out = out.replace(
        "    provider: anthropic\n",
        f"    provider: anthropic\n    base_url: {sim_url}/anthropic\n",
    )
    return out, changed_lines(text, out)


def rewrite_nginx(upstreams: list[int], port: int, tmp: Path) -> tuple[str, list[str]]:
    """deploy/nginx.conf with the upstream servers and listen port local, and the pid, logs and
    temp files in ``tmp`` (the access log also names the upstream that answered)."""
    text = (DEPLOY / "nginx.conf").read_text()
    out = text.replace(
        "events {}", f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}"
    )
    temp = "".join(
        f"  {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    log = (
        "  log_format upstream '$status $upstream_addr $upstream_status $request';\n"
        f"  access_log {tmp}/access.log upstream;\n"
    )
    out = out.replace("http {\n", "http {\n" + log + temp)
    for i, p in enumerate(upstreams, 1):
        out = out.replace(f"server gateway{i}:4000 ", f"server 127.0.0.1:{p} ")
    out = out.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    return out, changed_lines(text, out)


def start_postgres() -> PgServer:
    """The postgres service: its POSTGRES_USER / _PASSWORD / _DB, password checked (scram)."""
    env = compose()["services"]["postgres"]["environment"]
    user, password, db = env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]
    pg = PgServer().start()
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {db} OWNER {user}")
    hba = pg.data / "pg_hba.conf"
    hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg._run(str(pg.bindir / "pg_ctl"), "-D", str(pg.data), "reload")
    time.sleep(0.5)  # the postmaster re-reads pg_hba.conf on SIGHUP
    return pg


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The redis service's command, plus a loopback port and a data directory."""
    command = compose()["services"]["redis"]["command"]
    binary = shutil.which(command[0])
    assert binary, "redis-server is not installed (apt-get install -y redis-server)"
    port = free_port()
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    proc = subprocess.Popen([binary, *command[1:], *local], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    wait(lambda: _ping(client), "redis-server")
    client.close()
    return proc, port


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def start_simulator(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / "simulator.log").open("wb")
    cmd = [sys.executable, "-m", "modelmix.simulated", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait(lambda: http_status(url + "/openai/v1/models") > 0, "the simulated upstream")
    return proc, url


def start_nginx(conf: Path, prefix: Path) -> subprocess.Popen[bytes]:
    if not NGINX.is_file():
        raise AssertionError(
            "nginx is not installed: apt-get install -y --no-install-recommends nginx "
            "(.ci/run does it)"
        )
    cmd = [str(NGINX), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    return subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.STDOUT)


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET (0 when nothing answers)."""
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait(ok: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what} did not come up within {timeout} s"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
