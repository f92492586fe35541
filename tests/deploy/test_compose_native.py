"""deploy/compose.yaml's deployment, run as host processes (tests/deploy/native.py): PostgreSQL
with the compose file's user and password, Redis with its command, two `modelmix serve`
replicas as the Dockerfile runs them on deploy/modelmix.yaml, and nginx on deploy/nginx.conf,
each file rewritten only in host names and ports (asserted), the vendors' base URLs pointed at
the simulated upstream. The real openai SDK talks to nginx: requests are spread over both
replicas, land once in the shared ledger, a key made on one replica works on the other, and
SIGTERM to one replica fails no request. Not covered: the image build and Docker networking.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import openai
import orjson
import psycopg
import pytest
import redis

from tests.deploy import native
from tests.e2e.test_serve_command import free_port

CHAT = "POST /v1/chat/completions"
#: One request as its client saw it: 200 or the error, and the gateway's request id.
Answer = tuple[int | str, str | None]


class Topology:
    """The running services; ``stack`` stops them."""

    def __init__(self, tmp: Path, stack: ExitStack) -> None:
        self.tmp = tmp
        self.pg = native.start_postgres()
        stack.callback(self.pg.stop)
        redis_proc, self.redis_port = native.start_redis(tmp)
        stack.callback(native.stop, redis_proc)
        sim, self.sim_url = native.start_simulator(tmp)
        stack.callback(native.stop, sim)
        self.config_text, self.config_changes = native.rewrite_config(
            f"redis://127.0.0.1:{self.redis_port}/0", f"127.0.0.1:{self.pg.port}", self.sim_url
        )
        (tmp / "modelmix.yaml").write_text(self.config_text)
        self.ports = [free_port(), free_port()]
        self.gateways = [self._gateway(i, stack) for i in range(2)]
        for i in range(2):  # the compose healthcheck, on each replica, before nginx sends work
            url = self.ready_url(i)
            native.wait(lambda url=url: native.http_status(url) == 200, f"gateway{i + 1}")
        self.lb_port = free_port()
        conf, self.nginx_changes = native.rewrite_nginx(self.ports, self.lb_port, tmp)
        (tmp / "nginx.conf").write_text(conf)
        stack.callback(native.stop, native.start_nginx(tmp / "nginx.conf", tmp))
        native.wait(lambda: native.http_status(self.lb_url + "/health") == 200, "nginx")

    def _gateway(self, i: int, stack: ExitStack) -> subprocess.Popen[bytes]:
        data = self.tmp / f"gateway{i + 1}-data"
        data.mkdir()
        log = (self.tmp / f"gateway{i + 1}.log").open("wb")
        stack.callback(log.close)
        args = native.gateway_args(self.tmp / "modelmix.yaml", self.ports[i])
        proc = subprocess.Popen(args, env=native.gateway_env(data), stdout=log, stderr=log)
        stack.callback(native.stop, proc)
        return proc

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def ready_url(self, i: int) -> str:
        """The compose healthcheck's URL, on replica ``i``'s port."""
        test = " ".join(native.compose()["x-gateway"]["healthcheck"]["test"])
        url = re.findall(r"'(http://127\.0\.0\.1:4000/\w+)'", test)[0]
        return str(url).replace(":4000", f":{self.ports[i]}")

    def gateway_log(self, i: int) -> str:
        return (self.tmp / f"gateway{i + 1}.log").read_text(errors="replace")

    def served(self, i: int) -> set[str]:
        """The request ids in replica ``i``'s access log (modelmix.access)."""
        return set(re.findall(CHAT + r" 200 .* id=(mm-\w+)", self.gateway_log(i)))

    def nginx_log(self) -> list[list[str]]:
        """Per proxied chat request: [status, upstream_addr(s) ..., upstream status(es) ...]."""
        lines = (self.tmp / "access.log").read_text().splitlines()
        return [line.split(" ") for line in lines if CHAT in line]


def _client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


async def _ask(client: openai.AsyncOpenAI, i: int) -> Answer:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": f"Describe the water cycle ({i})."}],
            max_tokens=30,
        )
        return 200, raw.headers.get("x-modelmix-request-id")
    except openai.APIStatusError as exc:
        return f"{exc.status_code}:{exc.code}", None
    except openai.APIConnectionError as exc:
        return f"connection:{exc}", None


async def _load(
    url: str, key: str, seconds: float, sigterm: subprocess.Popen[bytes]
) -> list[Answer]:
    """Requests through nginx at concurrency 8 for ``seconds``; SIGTERM ``sigterm`` halfway."""
    out: list[Answer] = []
    stop = asyncio.Event()
    client = _client(url, key)

    async def worker(w: int) -> None:
        i = 0
        while not stop.is_set():
            out.append(await _ask(client, 1000 * w + i))
            i += 1

    workers = asyncio.gather(*(worker(w) for w in range(8)))
    await asyncio.sleep(seconds / 2)
    sigterm.send_signal(signal.SIGTERM)
    await asyncio.sleep(seconds / 2)
    stop.set()
    await workers
    await client.close()
    return out


def _create_key(port: int) -> str:
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/keys",
        data=orjson.dumps({"name": "compose-native"}),
        headers={"authorization": f"Bearer {native.COMPOSE_VARS['MODELMIX_ADMIN_KEY']}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 201
        return str(orjson.loads(resp.read())["key"])


def _check_rewrites(top: Topology) -> None:
    """Only host names, ports and paths differ from the shipped files."""
    assert sorted(top.config_changes) == sorted(
        [
            "-   redis_url: redis://redis:6379/0",
            f"+   redis_url: redis://127.0.0.1:{top.redis_port}/0",
            "-   url: postgresql://modelmix@postgres:5432/modelmix   # one ledger for every"
            " replica (PGPASSWORD)",
            f"+   url: postgresql://modelmix@127.0.0.1:{top.pg.port}/modelmix   # one ledger for"
            " every replica (PGPASSWORD)",
            f"+     base_url: {top.sim_url}/openai/v1",
            f"+     base_url: {top.sim_url}/anthropic",
        ]
    )
    removed = [c[2:].strip() for c in top.nginx_changes if c[0] == "-"]
    assert removed == [
        "server gateway1:4000 max_fails=2 fail_timeout=5s;",
        "server gateway2:4000 max_fails=2 fail_timeout=5s;",
        "listen 8080;",
    ]
    added = [c[2:].strip() for c in top.nginx_changes if c[0] == "+"]
    assert added[:2] == [f"pid {top.tmp}/nginx.pid;", f"error_log {top.tmp}/error.log;"]
    assert all(re.match(r"(log_format|access_log|\w+_temp_path) ", a) for a in added[2:-3])
    assert added[-3:] == [
        f"server 127.0.0.1:{top.ports[0]} max_fails=2 fail_timeout=5s;",
        f"server 127.0.0.1:{top.ports[1]} max_fails=2 fail_timeout=5s;",
        f"listen 127.0.0.1:{top.lb_port};",
    ]


def _check_redis(port: int) -> None:
    """The redis service's command took effect: append-only file, no eviction."""
    client = redis.Redis(port=port, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    client.close()


def _ledger_ids(top: Topology) -> Counter[str]:
    """The shared ledger's rows, read as the compose file's user with its password."""
    env = native.compose()["services"]["postgres"]["environment"]
    url = f"postgresql://{env['POSTGRES_USER']}@127.0.0.1:{top.pg.port}/{env['POSTGRES_DB']}"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url, connect_timeout=5).close()  # the password is checked
    with psycopg.connect(url, password=env["POSTGRES_PASSWORD"]) as conn:
        return Counter(str(r[0]) for r in conn.execute("SELECT id FROM requests"))


def test_compose_topology_serves_through_nginx(tmp_path: Path) -> None:
    # started in the test, not a fixture: a missing nginx or PostgreSQL is a failure
    with ExitStack() as stack:
        _scenario(Topology(tmp_path, stack))


def _scenario(top: Topology) -> None:
    _check_rewrites(top)
    _check_redis(top.redis_port)
    key = _create_key(top.ports[0])  # made through replica 1's admin API ...

    async def spread() -> list[Answer]:
        direct = _client(f"http://127.0.0.1:{top.ports[1]}", key)  # ... works on replica 2
        first = [await _ask(direct, -1)]
        await direct.close()
        client = _client(top.lb_url, key)
        rest = await asyncio.gather(*(_ask(client, i) for i in range(40)))
        await client.close()
        return first + list(rest)

    answers = asyncio.run(spread())
    assert {status for status, _ in answers} == {200}
    upstreams = Counter(line[1] for line in top.nginx_log())
    assert set(upstreams) == {f"127.0.0.1:{p}" for p in top.ports}, upstreams
    ids = [rid for _, rid in answers]
    native.wait(lambda: len(top.served(0) | top.served(1)) >= len(ids), "the access logs")
    served = [top.served(i) for i in range(2)]  # which replica answered each request
    assert not served[0] & served[1] and served[0] | served[1] == set(ids)
    assert ids[0] in served[1]  # the key made on replica 1 worked on replica 2
    for i in range(2):  # nginx's log and the replica's own log agree
        assert len(served[i]) == upstreams[f"127.0.0.1:{top.ports[i]}"] + i

    during = asyncio.run(_load(top.lb_url, key, 4.0, top.gateways[0]))
    # a graceful exit (uvicorn re-raises the signal it handled, hence -SIGTERM)
    assert top.gateways[0].wait(40) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in top.gateway_log(0)
    failed = Counter(status for status, _ in during if status != 200)
    assert not failed, failed
    native.stop(top.gateways[1])
    answered = [rid for _, rid in answers + during]
    assert None not in answered
    assert _ledger_ids(top) == Counter(answered)  # every answer: one row, no other rows
    after = top.nginx_log()[len(answers) - 1 :]
    retried = sum("," in " ".join(line) for line in after)
    counts = [len(s) for s in served]
    print(
        f"{len(answers)} requests spread {counts}; {len(during)} during SIGTERM, {retried} retried"
    )
