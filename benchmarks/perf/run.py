"""modelmix performance benchmark: one command, targets side by side, prints a table.

    python3 benchmarks/perf/run.py            # full run (~8 min): 10k/100k-request memory run
    python3 benchmarks/perf/run.py --quick    # CI-sized smoke run (~1 min with LiteLLM)
    python3 benchmarks/perf/run.py --json out.json --no-litellm --workers 1,2

Targets, all in front of the same mock upstream (mock_upstream.py):

* ``direct``     the mock itself (the floor);
* ``bare``       a minimal aiohttp pass-through proxy (bare_proxy.py, the Python limit);
* ``mm-pass``    modelmix, one model, no auth (configs/passthrough.yaml; ledger on);
* ``mm-feat``    modelmix with features on: virtual-key auth, ledger, the ``auto`` route
                 (configs/features.yaml, or ``--features-config``);
* ``mm-dist``    the features config distributed: a PostgreSQL ledger (``ledger.url``) and
                 Redis shared state (``state.redis_url``), both throwaway servers started the
                 way the tests start them (tests/pg.py, tests/state/redis_server.py),
                 with a global hard budget so every request reserves in Redis;
                 ``--no-dist`` skips it;
* ``mm-feat-budget`` the features config with the same hard budget on SQLite and the local
                 counters file: the baseline of mm-dist's goal (started with mm-dist);
* ``mm-cache``   the features config with the response cache on (in memory,
                 ``any_temperature``): after the first request every call is a cache hit;
* ``litellm``    LiteLLM's proxy from its own venv (litellm_setup.sh), master key, local cost map.

Measurements are interleaved: each round runs every scenario (JSON c=1, stream c=1, JSON and
stream at saturation) against every target in turn, for ``--round-seconds`` each, and the
histograms are merged over rounds, so machine noise hits all targets alike. CPU pinning: every
server under test runs on core 1 (``taskset -c 1``); the mock and the load generator share
core 0. The multi-worker phase runs unpinned (workers need every core).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from loadgen import merge, percentile  # noqa: E402

PY = sys.executable
SERVER_CORE = "1"
CLIENT_CORE = "0"
LITELLM_MASTER_KEY = "sk-bench-master"
SCENARIOS = ("json_c1", "stream_c1", "json_sat", "stream_sat")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: str | None, argv: Sequence[str]) -> list[str]:
    if core is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *argv]
    return list(argv)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` plus its children (uvicorn workers), in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/PID/stat``; 0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Target:
    name: str
    url: str  # chat completions URL
    model: str
    key: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    ledger: Path | str | None = None  # a SQLite file or a PostgreSQL URL
    sent: int = 0
    results: dict[str, dict[str, object]] = field(default_factory=dict)

    def add(self, scenario: str, r: dict[str, object]) -> None:
        self.sent += int(r["count"])  # type: ignore[call-overload]
        acc = self.results.setdefault(
            scenario,
            {
                "count": 0,
                "errors": 0,
                "elapsed": 0.0,
                "latency": {},
                "ttfb": {},
                "first_error": None,
                "cpu": 0.0,
            },
        )
        acc["count"] += r["count"]  # type: ignore[operator]
        acc["cpu"] += r.get("cpu", 0.0)  # type: ignore[operator]
        acc["errors"] += r["errors"]  # type: ignore[operator]
        acc["elapsed"] += r["elapsed"]  # type: ignore[operator]
        acc["first_error"] = acc["first_error"] or r["first_error"]
        merge(acc["latency"], r["latency"])  # type: ignore[arg-type]
        merge(acc["ttfb"], r["ttfb"])  # type: ignore[arg-type]


#: A global hard budget far above what a run spends: every request reserves its worst case
#: (in Redis for mm-dist, in the counters file for mm-feat-budget) and settles it.
BUDGET: dict[str, object] = {
    "budgets": {"global": [{"kind": "hard", "period": "total", "limit_usd": "1e6"}]}
}


def dist_settings(pg_url: str, redis_url: str, budget: bool = True) -> dict[str, object]:
    """What mm-dist adds to the features config: the shared ledger and state, and (unless
    ``--dist-no-budget``) ``BUDGET``. The features config has no budget and no rate limit, so
    without it Redis would be off the request path; with it every request makes its
    reservation round trip to Redis, as a budgeted replica does. mm-dist is compared with
    mm-feat-budget (the same budget on SQLite and the local counters file)."""
    out: dict[str, object] = {"ledger": {"url": pg_url}, "state": {"redis_url": redis_url}}
    if budget:
        out.update(BUDGET)
    return out


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="modelmix-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []
        self.mock_url = ""
        self.cleanups: list[Callable[[], None]] = []

    # -- processes ------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop(
        self, proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, wait: float = 15
    ) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc, signal.SIGTERM, 10)
        for cleanup in reversed(self.cleanups):
            cleanup()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.work / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- set-up ---------------------------------------------------------------------------

    def render(self, template: Path, name: str) -> tuple[Path, Path]:
        data_dir = self.work / name
        data_dir.mkdir()
        text = string.Template(template.read_text()).substitute(
            MOCK_URL=self.mock_url, DATA_DIR=str(data_dir)
        )
        path = self.work / f"{name}.yaml"
        path.write_text(text)
        return path, data_dir / "ledger.db"

    def render_with(self, name: str, extra: dict[str, object]) -> tuple[Path, Path]:
        """The features config with ``extra`` top-level sections added."""
        path, db = self.render(Path(self.args.features_config), name)
        data = yaml.safe_load(path.read_text())
        data.update(extra)
        path.write_text(yaml.safe_dump(data))
        return path, db

    def start_services(self) -> tuple[str, str]:
        """A throwaway PostgreSQL and Redis, started as the tests start them (the same code);
        pinned with the mock and the load generator, off the server-under-test's core, as
        they would run on other machines. Returns (a fresh database URL, the Redis URL)."""
        sys.path.insert(0, str(ROOT))
        from tests.pg import PgServer
        from tests.state.redis_server import RedisServer

        pg = PgServer()
        self.cleanups.append(pg.stop)
        pg.start()
        redis = RedisServer(self.work)
        self.cleanups.append(redis.stop)
        redis.start()
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        assert redis.proc is not None
        for pid in (postmaster, redis.proc.pid):
            if shutil.which("taskset"):
                subprocess.run(["taskset", "-a", "-p", "-c", CLIENT_CORE, str(pid)], check=True,
                               capture_output=True)  # fmt: skip
        return pg.new_database(), redis.url

    def start_modelmix(self, name: str, config: Path, model: str, key: bool) -> Target:
        port = free_port()
        api_key = None
        if key:
            out = subprocess.run(
                ["modelmix", "keys", "create", "bench", "--config", str(config)],
                check=True,
                capture_output=True,
                text=True,
            )
            api_key = out.stdout.strip().splitlines()[-1]
        proc = self.spawn(
            name,
            pinned(
                SERVER_CORE,
                [
                    "modelmix",
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
            ),
        )
        wait_http(f"http://127.0.0.1:{port}/health", 30, proc)
        return Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", model, api_key, proc)

    def start_litellm(self) -> Target | None:
        try:
            out = subprocess.run(
                ["bash", str(HERE / "litellm_setup.sh")],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if out.returncode != 0:
                raise RuntimeError(f"litellm_setup.sh failed: {out.stderr.strip()[-800:]}")
            exe = out.stdout.strip().splitlines()[-1]
            port = free_port()
            cfg = self.work / "litellm.yaml"
            cfg.write_text(
                "model_list:\n"
                "  - model_name: mock-model\n"
                "    litellm_params:\n"
                "      model: openai/mock-model\n"
                f"      api_base: {self.mock_url}\n"
                "      api_key: unused\n"
                "general_settings:\n"
                f"  master_key: {LITELLM_MASTER_KEY}\n"
            )
            env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
            proc = self.spawn(
                "litellm",
                pinned(
                    SERVER_CORE,
                    [
                        exe,
                        "--config",
                        str(cfg),
                        "--port",
                        str(port),
                        "--host",
                        "127.0.0.1",
                    ],
                ),
                env=env,
                cwd=self.work,
            )
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120, proc)
            return Target(
                "litellm",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                "mock-model",
                LITELLM_MASTER_KEY,
                proc,
            )
        except Exception as exc:
            tail = self.log_tail("litellm")
            self.notes.append(f"LiteLLM not measured: {exc}" + (f"\n{tail}" if tail else ""))
            return None

    def setup(self) -> None:
        a = self.args
        mock_port = free_port()
        self.mock_url = f"http://127.0.0.1:{mock_port}/v1"
        mock = self.spawn(
            "mock",
            pinned(
                CLIENT_CORE,
                [
                    PY,
                    str(HERE / "mock_upstream.py"),
                    "--port",
                    str(mock_port),
                    "--delay",
                    str(a.mock_delay),
                    "--chunks",
                    str(a.chunks),
                ],
            ),
        )
        wait_http(f"http://127.0.0.1:{mock_port}/health", 15, mock)
        self.targets.append(Target("direct", f"{self.mock_url}/chat/completions", "mock-model"))
        bare_port = free_port()
        bare = self.spawn(
            "bare",
            pinned(
                SERVER_CORE,
                [
                    PY,
                    str(HERE / "bare_proxy.py"),
                    "--port",
                    str(bare_port),
                    "--upstream",
                    self.mock_url,
                ],
            ),
        )
        wait_http(f"http://127.0.0.1:{bare_port}/health", 15, bare)
        self.targets.append(
            Target(
                "bare",
                f"http://127.0.0.1:{bare_port}/v1/chat/completions",
                "mock-model",
                None,
                bare,
            )
        )
        cfg, db = self.render(HERE / "configs" / "passthrough.yaml", "mm-pass")
        t = self.start_modelmix("mm-pass", cfg, "mock-model", key=False)
        t.ledger = db
        self.targets.append(t)
        cfg, db = self.render(Path(a.features_config), "mm-feat")
        t = self.start_modelmix("mm-feat", cfg, a.features_model, key=True)
        t.ledger = db
        self.feat_config = cfg
        self.targets.append(t)
        if not a.no_dist:
            budget = not a.dist_no_budget
            if budget:  # the SQLite baseline mm-dist is compared with: the same budget
                cfg, db = self.render_with("mm-feat-budget", BUDGET)
                t = self.start_modelmix("mm-feat-budget", cfg, a.features_model, key=True)
                t.ledger = db
                self.targets.append(t)
            pg_url, redis_url = self.start_services()
            cfg, _ = self.render_with("mm-dist", dist_settings(pg_url, redis_url, budget))
            t = self.start_modelmix("mm-dist", cfg, a.features_model, key=True)
            t.ledger = pg_url
            self.targets.append(t)
        cache = {"cache": {"enabled": True, "any_temperature": True}}
        cfg, db = self.render_with("mm-cache", cache)
        t = self.start_modelmix("mm-cache", cfg, a.features_model, key=True)
        t.ledger = db
        self.targets.append(t)
        if not a.no_litellm:
            lt = self.start_litellm()
            if lt is not None:
                self.targets.append(lt)

    # -- load -----------------------------------------------------------------------------

    def load(
        self,
        t: Target,
        *,
        concurrency: int,
        stream: bool,
        duration: float,
        requests: int | None = None,
        core: str | None = CLIENT_CORE,
    ) -> dict[str, object]:
        argv = [
            PY,
            str(HERE / "loadgen.py"),
            "--url",
            t.url,
            "-c",
            str(concurrency),
            "-d",
            str(duration),
            "--model",
            t.model,
        ]
        if stream:
            argv.append("--stream")
        if t.key:
            argv += ["--key", t.key]
        if requests is not None:
            argv += ["-n", str(requests)]
        out = subprocess.run(pinned(core, argv), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def warm_up(self) -> None:
        for t in self.targets:
            for stream in (False, True):
                r = self.load(t, concurrency=4, stream=stream, duration=self.args.warmup)
                t.sent += int(r["count"])  # type: ignore[call-overload]
                if r["errors"]:
                    self.notes.append(
                        f"{t.name} warm-up errors: {r['errors']} ({r['first_error']})"
                    )

    def rounds(self) -> None:
        a = self.args
        for i in range(a.rounds):
            order = self.targets[i % len(self.targets) :] + self.targets[: i % len(self.targets)]
            for scenario in SCENARIOS:
                conc = 1 if scenario.endswith("c1") else a.concurrency
                stream = scenario.startswith("stream")
                for t in order:
                    cpu0 = cpu_seconds(t.proc.pid) if t.proc else 0.0
                    r = self.load(t, concurrency=conc, stream=stream, duration=a.round_seconds)
                    if t.proc:
                        r["cpu"] = cpu_seconds(t.proc.pid) - cpu0
                    t.add(scenario, r)
            print(f"round {i + 1}/{a.rounds} done", file=sys.stderr, flush=True)

    def long_run(self, t: Target, checkpoints: Sequence[int]) -> list[tuple[int, int]]:
        """Drive ``t`` (JSON and stream alternately, at saturation) through ``checkpoints``
        more requests (counted from now); (requests served so far, RSS KiB) at each."""
        assert t.proc is not None
        out = [(t.sent, rss_kib(t.proc.pid))]
        stream = False
        base = t.sent
        for checkpoint in checkpoints:
            goal = base + checkpoint
            while t.sent < goal:
                n = min(goal - t.sent, 5000)
                r = self.load(
                    t, concurrency=self.args.concurrency, stream=stream, duration=3600, requests=n
                )
                t.sent += int(r["count"])  # type: ignore[call-overload]
                if r["errors"]:
                    self.notes.append(
                        f"{t.name} long-run errors: {r['errors']} ({r['first_error']})"
                    )
                stream = not stream
            out.append((t.sent, rss_kib(t.proc.pid)))
        return out

    def decision_times(self, db: Path | str) -> list[float]:
        """Routing decision times (microseconds) the gateway recorded in its ledger rows."""
        conn = sqlite3.connect(str(db), timeout=30)
        try:
            rows = conn.execute(
                "SELECT json_extract(decision, '$.decision_us') FROM requests "
                "WHERE json_extract(decision, '$.strategy') = 'learned'"
            ).fetchall()
        finally:
            conn.close()
        return sorted(float(r[0]) for r in rows if r[0] is not None)

    def ledger_rows(self, db: Path | str) -> int:
        if isinstance(db, str):  # the PostgreSQL ledger
            import psycopg

            with psycopg.connect(db) as pg:
                row = pg.execute("SELECT count(*) FROM requests").fetchone()
                return int(row[0]) if row else 0
        conn = sqlite3.connect(str(db), timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
        finally:
            conn.close()

    def multi_worker(self, counts: Sequence[int]) -> list[dict[str, object]]:
        """modelmix (features config) under ``modelmix serve --workers N``, unpinned; saturation
        rounds."""
        a = self.args
        results: list[dict[str, object]] = []
        for n in counts:
            cfg, db = self.render(Path(a.features_config), f"mm-w{n}")
            key = (
                subprocess.run(
                    ["modelmix", "keys", "create", "bench", "--config", str(cfg)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            port = free_port()
            proc = self.spawn(
                f"mm-w{n}",
                [
                    "modelmix",
                    "serve",
                    "--config",
                    str(cfg),
                    "--port",
                    str(port),
                    "--workers",
                    str(n),
                    "--log-level",
                    "warning",
                ],
            )
            wait_http(f"http://127.0.0.1:{port}/health", 60, proc)
            t = Target(
                f"mm-w{n}",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                a.features_model,
                key,
                proc,
                db,
            )
            self.load(t, concurrency=8, stream=False, duration=a.warmup, core=None)
            t.sent = 0
            rows0 = self.ledger_rows_settled(db)
            for _ in range(a.rounds):
                for scenario in ("json_sat", "stream_sat"):
                    t.add(
                        scenario,
                        self.load(
                            t,
                            concurrency=a.concurrency,
                            stream=scenario == "stream_sat",
                            duration=a.round_seconds,
                            core=None,
                        ),
                    )
            self.stop(proc)
            rows = self.ledger_rows(db) - rows0
            results.append(
                {
                    "workers": n,
                    "json_rps": _rps(t.results["json_sat"]),
                    "stream_rps": _rps(t.results["stream_sat"]),
                    "sent": t.sent,
                    "ledger_rows": rows,
                    "errors": sum(int(r["errors"]) for r in t.results.values()),  # type: ignore[call-overload]
                }
            )
        return results

    def cache_hits(self, db: Path | str) -> int:
        """Rows of the cache target served from the cache (a check that it measured hits)."""
        conn = sqlite3.connect(str(db), timeout=30)
        try:
            sql = (
                "SELECT count(*) FROM requests "
                "WHERE json_extract(decision, '$.cache.hit') IS NOT NULL"
            )
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()

    def ledger_rows_settled(self, db: Path) -> int:
        last = -1
        for _ in range(50):
            n = self.ledger_rows(db)
            if n == last:
                return n
            last = n
            time.sleep(0.3)
        return last


def _rps(r: dict[str, object] | None) -> float:
    if not r or not r["elapsed"]:
        return float("nan")
    return float(r["count"]) / float(r["elapsed"])  # type: ignore[arg-type]


def _cpu_us(r: dict[str, object] | None) -> float:
    """Server CPU time per request at saturation, in microseconds (NaN when not measured)."""
    if not r or not r["count"] or not r.get("cpu"):
        return float("nan")
    return float(r["cpu"]) / float(r["count"]) * 1e6  # type: ignore[arg-type]


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _pct(r: dict[str, object] | None, key: str, q: float) -> float:
    if not r:
        return float("nan")
    return percentile(r[key], q)  # type: ignore[arg-type]


def _f(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def summarize(
    b: Bench,
    memory: list[tuple[int, int]],
    ledger: dict[str, dict[str, int]],
    workers: list[dict[str, object]],
) -> dict[str, object]:
    by = {t.name: t for t in b.targets}
    direct = by["direct"].results
    rows = {}
    for t in b.targets:
        r = t.results
        row = {
            "json_c1_p50": _pct(r.get("json_c1"), "latency", 50),
            "json_c1_p99": _pct(r.get("json_c1"), "latency", 99),
            "added_p50": _pct(r.get("json_c1"), "latency", 50)
            - _pct(direct.get("json_c1"), "latency", 50),
            "added_p99": _pct(r.get("json_c1"), "latency", 99)
            - _pct(direct.get("json_c1"), "latency", 99),
            "ttfb_p50": _pct(r.get("stream_c1"), "ttfb", 50),
            "ttfb_p99": _pct(r.get("stream_c1"), "ttfb", 99),
            "added_ttfb_p50": _pct(r.get("stream_c1"), "ttfb", 50)
            - _pct(direct.get("stream_c1"), "ttfb", 50),
            "json_rps": _rps(r.get("json_sat")),
            "stream_rps": _rps(r.get("stream_sat")),
            "json_cpu_us": _cpu_us(r.get("json_sat")),
            "stream_cpu_us": _cpu_us(r.get("stream_sat")),
            "errors": sum(int(x["errors"]) for x in r.values()),  # type: ignore[call-overload]
            "first_error": next((x["first_error"] for x in r.values() if x["first_error"]), None),
            "requests": t.sent,
        }
        rows[t.name] = row
    return {
        "targets": rows,
        "memory": memory,
        "ledger": ledger,
        "workers": workers,
        "notes": b.notes,
    }


def goals(s: dict[str, object]) -> list[tuple[str, bool | None, str]]:
    rows: dict[str, dict[str, float]] = s["targets"]  # type: ignore[assignment]
    mm, bare, lt = rows.get("mm-feat"), rows.get("bare"), rows.get("litellm")
    out: list[tuple[str, bool | None, str]] = []
    if mm is None or bare is None:
        return out
    for kind in ("json_rps", "stream_rps"):
        ratio = mm[kind] / bare[kind]
        out.append((f"{kind} >= 50% of bare", ratio >= 0.5, f"{ratio:.0%}"))
        if lt:
            x = mm[kind] / lt[kind]
            out.append((f"{kind} >= 20x LiteLLM", x >= 20, f"{x:.1f}x"))
        else:
            out.append((f"{kind} >= 20x LiteLLM", None, "LiteLLM not measured"))
    for k in ("added_p50", "added_p99"):
        ratio = mm[k] / bare[k] if bare[k] > 0 else float("inf")
        out.append(
            (
                f"{k} at c=1 <= 2x bare",
                ratio <= 2,
                f"{_f(mm[k], 3)} vs {_f(bare[k], 3)} ms = {ratio:.2f}x",
            )
        )
    ratio = mm["ttfb_p50"] / bare["ttfb_p50"]
    out.append(
        (
            "stream TTFB p50 <= 2x bare",
            ratio <= 2,
            f"{_f(mm['ttfb_p50'], 3)} vs {_f(bare['ttfb_p50'], 3)} ms = {ratio:.2f}x"
            f" (added over direct: {_f(mm['added_ttfb_p50'], 3)} vs "
            f"{_f(bare['added_ttfb_p50'], 3)} ms)",
        )
    )
    out += scale_goals(rows)
    dec: dict[str, float] = s.get("decision_us", {})  # type: ignore[assignment]
    if dec.get("count"):
        out.append(
            (
                "learned routing decision p50 < 1 ms (mm-feat's ledger, under load)",
                dec["p50"] < 1000,
                f"p50 {dec['p50']:.0f} us, p99 {dec['p99']:.0f} us over {dec['count']} requests",
            )
        )
    ledger: dict[str, dict[str, int]] = s["ledger"]  # type: ignore[assignment]
    ok = all(v["rows"] == v["sent"] for v in ledger.values())
    out.append(
        (
            "no lost ledger rows",
            ok,
            ", ".join(f"{k}: {v['rows']}/{v['sent']}" for k, v in ledger.items()),
        )
    )
    mem: list[tuple[int, int]] = s["memory"]  # type: ignore[assignment]
    if len(mem) >= 3:
        growth = mem[-1][1] / mem[-2][1] - 1
        out.append(
            (
                f"memory within 10% between {mem[-2][0]} and {mem[-1][0]} requests",
                abs(growth) <= 0.10,
                f"{growth:+.1%}",
            )
        )
    return out


def scale_goals(rows: dict[str, dict[str, float]]) -> list[tuple[str, bool | None, str]]:
    """Issue 13: the distributed mode against the SQLite one (same run), cache hits against
    the bare proxy's pass-through."""
    out: list[tuple[str, bool | None, str]] = []
    base = "mm-feat-budget" if "mm-feat-budget" in rows else "mm-feat"
    feat, dist = rows.get(base), rows.get("mm-dist")
    cache, bare = rows.get("mm-cache"), rows.get("bare")
    if feat and dist:
        for kind in ("json_rps", "stream_rps"):
            ratio = dist[kind] / feat[kind]
            out.append(
                (
                    f"mm-dist {kind} >= 80% of {base} (PostgreSQL + Redis vs SQLite)",
                    ratio >= 0.8,
                    f"{ratio:.0%} ({_f(dist[kind], 0)} vs {_f(feat[kind], 0)} rps)",
                )
            )
    if cache and bare:
        for kind in ("json_rps", "stream_rps"):
            ratio = cache[kind] / bare[kind]
            out.append((f"mm-cache hits {kind} >= bare", ratio >= 1, f"{ratio:.0%}"))
        p50, bare_p50 = cache["json_c1_p50"], bare["json_c1_p50"]
        out.append(
            (
                "mm-cache hits c=1 p50 <= bare",
                p50 <= bare_p50,
                f"{_f(p50, 3)} vs {_f(bare_p50, 3)} ms",
            )
        )
    return out


def render(s: dict[str, object], b: Bench, seconds: float) -> str:
    a = b.args
    rows: dict[str, dict[str, float]] = s["targets"]  # type: ignore[assignment]
    bare, lt = rows.get("bare"), rows.get("litellm")
    lines = [
        f"modelmix benchmark: {a.rounds} interleaved rounds x {a.round_seconds:g} s per "
        f"target and scenario; saturation = {a.concurrency} concurrent; mock delay "
        f"{a.mock_delay:g} s, {a.chunks} chunks per stream; {os.cpu_count()} CPUs; "
        f"{seconds:.0f} s total.",
        f"Pinning: servers under test on core {SERVER_CORE} (taskset -c {SERVER_CORE}); mock + "
        f"load generator on core {CLIENT_CORE}. Latencies in ms; 'added' = target minus direct "
        "(same percentile); rps = requests/s at saturation; cpu us = the server process's "
        "CPU time per request at saturation.",
        "",
    ]
    head = (
        "target",
        "c1 p50",
        "c1 p99",
        "added p50",
        "added p99",
        "TTFB p50",
        "TTFB p99",
        "json rps",
        "stream rps",
        "json/bare",
        "strm/bare",
        "json/LiteLLM",
        "strm/LiteLLM",
        "cpu us json",
        "cpu us strm",
        "errors",
    )
    table = [head]
    for name, r in rows.items():
        table.append(
            (
                name,
                _f(r["json_c1_p50"], 3),
                _f(r["json_c1_p99"], 3),
                _f(r["added_p50"], 3) if name != "direct" else "-",
                _f(r["added_p99"], 3) if name != "direct" else "-",
                _f(r["ttfb_p50"], 3),
                _f(r["ttfb_p99"], 3),
                _f(r["json_rps"], 0),
                _f(r["stream_rps"], 0),
                f"{r['json_rps'] / bare['json_rps']:.0%}" if bare else "-",
                f"{r['stream_rps'] / bare['stream_rps']:.0%}" if bare else "-",
                f"{r['json_rps'] / lt['json_rps']:.1f}x" if lt else "-",
                f"{r['stream_rps'] / lt['stream_rps']:.1f}x" if lt else "-",
                _f(r["json_cpu_us"], 0),
                _f(r["stream_cpu_us"], 0),
                str(r["errors"]),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for j, row in enumerate(table):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    mem: list[tuple[int, int]] = s["memory"]  # type: ignore[assignment]
    if mem:
        lines += [
            "",
            "mm-feat resident memory: "
            + ", ".join(f"{kib / 1024:.1f} MiB after {n} requests" for n, kib in mem),
        ]
    ledger: dict[str, dict[str, int]] = s["ledger"]  # type: ignore[assignment]
    if ledger:
        lines.append(
            "ledger rows after graceful stop / requests sent: "
            + ", ".join(
                f"{k} {v['rows']}/{v['sent']} (rows right after the last request: {v['lag_rows']}"
                + (f"; cache hits: {v['hits']}" if "hits" in v else "")
                + ")"
                for k, v in ledger.items()
            )
        )
    workers: list[dict[str, object]] = s["workers"]  # type: ignore[assignment]
    if workers:
        base = workers[0]
        lines += [
            "",
            "multi-worker (modelmix serve --workers N: processes sharing the port "
            "with SO_REUSEPORT; "
            "unpinned, load generator + mock on the same cores):",
        ]
        for w in workers:
            lines.append(
                f"  workers={w['workers']}: json {_f(w['json_rps'], 0)} rps "  # type: ignore[arg-type]
                f"({float(w['json_rps']) / float(base['json_rps']):.2f}x), stream "  # type: ignore[arg-type]
                f"{_f(w['stream_rps'], 0)} rps "  # type: ignore[arg-type]
                f"({float(w['stream_rps']) / float(base['stream_rps']):.2f}x); ledger "  # type: ignore[arg-type]
                f"{w['ledger_rows']}/{w['sent']} rows, errors {w['errors']}"
            )
    g = goals(s)
    if g:
        lines += ["", "goals (mm-feat = features on):"]
        for text, ok, detail in g:
            mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
            lines.append(f"  [{mark}] {text}: {detail}")
    for name, r in rows.items():
        if r["first_error"]:
            lines.append(f"  note: {name} first error: {r['first_error']}")
    for note in b.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="modelmix performance benchmark (see module doc)")
    p.add_argument("--quick", action="store_true", help="small CI-sized run")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (full 5, quick 1)")
    p.add_argument("--round-seconds", type=float, default=None, help="full 2, quick 1")
    p.add_argument("--concurrency", type=int, default=32, help="saturation concurrency")
    p.add_argument("--warmup", type=float, default=None, help="seconds per target (full 2)")
    p.add_argument(
        "--long",
        default=None,
        help="memory checkpoints, requests served by mm-feat (full 10000,100000)",
    )
    p.add_argument(
        "--workers",
        default=None,
        help="multi-worker counts to measure, e.g. 1,2 (full 1,2; 0 = skip)",
    )
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--no-dist", action="store_true", help="skip mm-dist (PostgreSQL + Redis)")
    p.add_argument(
        "--dist-no-budget",
        action="store_true",
        help="mm-dist without its hard budget (Redis off the request path), against mm-feat; "
        "by default mm-dist and mm-feat-budget both carry one",
    )
    p.add_argument("--features-config", default=str(HERE / "configs" / "features.yaml"))
    p.add_argument("--features-model", default="auto", help="model/route mm-feat is called with")
    p.add_argument("--mock-delay", type=float, default=0.0)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, ledgers)")
    a = p.parse_args(argv)
    full = not a.quick
    a.rounds = a.rounds or (5 if full else 1)
    a.round_seconds = a.round_seconds or (2.0 if full else 1.0)
    a.warmup = a.warmup if a.warmup is not None else (2.0 if full else 0.5)
    a.long = a.long or ("10000,100000" if full else "1000,3000")
    a.workers = a.workers or ("1,2" if full else "0")
    checkpoints = [int(x) for x in a.long.split(",") if x.strip()]
    worker_counts = [int(x) for x in a.workers.split(",") if int(x) > 0]

    t0 = time.monotonic()
    b = Bench(a)
    try:
        b.setup()
        b.warm_up()
        feat = next(t for t in b.targets if t.name == "mm-feat")
        assert feat.proc is not None
        memory = [(feat.sent, rss_kib(feat.proc.pid))]
        memory += b.long_run(feat, checkpoints)[1:]
        b.rounds()
        ledger: dict[str, dict[str, int]] = {}
        for t in b.targets:
            if t.ledger is not None and t.proc is not None:
                lag = b.ledger_rows(t.ledger)
                b.stop(t.proc)
                ledger[t.name] = {"rows": b.ledger_rows(t.ledger), "sent": t.sent, "lag_rows": lag}
        decisions = b.decision_times(feat.ledger) if feat.ledger is not None else []
        cached = next(t for t in b.targets if t.name == "mm-cache")
        if cached.ledger is not None:
            ledger["mm-cache"]["hits"] = b.cache_hits(cached.ledger)
        workers = b.multi_worker(worker_counts) if worker_counts else []
        s = summarize(b, memory, ledger, workers)
        s["decision_us"] = {
            "count": len(decisions),
            "p50": _quantile(decisions, 0.50),
            "p99": _quantile(decisions, 0.99),
        }
        text = render(s, b, time.monotonic() - t0)
        print(text)
        if a.json:
            s["table"] = text
            s["goals"] = [{"goal": g, "ok": ok, "detail": d} for g, ok, d in goals(s)]
            Path(a.json).write_text(json.dumps(s, indent=2, default=str))
    finally:
        if a.keep:
            print(f"work dir kept: {b.work}", file=sys.stderr)
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
