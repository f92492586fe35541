"""Regression alarms: they fire on a model that degrades or shifts, and stay quiet on noise."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.gateway import Gateway
from modelmix.ledger.db import Location
from modelmix.quality.alarms import findings
from modelmix.quality.config import AlarmsConfig
from modelmix.quality.store import Observation
from tests.conftest import ledger_settings
from tests.helpers import make_config, sim_model

CONFIG = AlarmsConfig(enabled=True, window=20, min_baseline=20, baseline=200, alpha=0.001)
GOLDEN = Path(__file__).resolve().parents[2] / "examples" / "evals" / "golden.jsonl"


def series(values: list[dict[str, Any]]) -> dict[tuple[str, str], list[Observation]]:
    return {("model:m", "probe"): [Observation(float(i), "m", **v) for i, v in enumerate(values)]}


def kinds(values: list[dict[str, Any]]) -> set[str]:
    return {f.kind for f in findings(series(values), CONFIG)[0]}


def test_a_quality_drop_fires_and_noise_does_not() -> None:
    rng = random.Random(1)
    steady = [{"score": float(rng.random() < 0.8)} for _ in range(60)]
    dropped = steady[:40] + [{"score": float(rng.random() < 0.3)} for _ in range(20)]
    assert kinds(dropped) == {"quality_drop"}
    assert kinds(steady) == set()
    # every window of a long stationary but noisy series: never an alarm
    noisy = [{"score": float(rng.random() < 0.7)} for _ in range(600)]
    false_alarms = sum(bool(kinds(noisy[:end])) for end in range(40, 600, 5))
    assert false_alarms == 0
    # a small drop (beyond noise or not) is below min_drop: no alarm either
    slight = steady[:40] + [{"score": float(i % 20 != 0)} for i in range(20)]
    assert "quality_drop" not in kinds(slight)
    assert kinds(steady[:30]) == set()  # too little data


def test_behaviour_shifts() -> None:
    base = [
        {"completion_tokens": 10 + i % 3, "refusal": False, "fingerprint": "fp1"} for i in range(40)
    ]
    longer = base + [
        {"completion_tokens": 40 + i % 3, "refusal": False, "fingerprint": "fp1"} for i in range(20)
    ]
    assert kinds(longer) == {"length_shift"}
    refusing = base + [
        {"completion_tokens": 11, "refusal": i % 2 == 0, "fingerprint": "fp1"} for i in range(20)
    ]
    assert kinds(refusing) == {"refusal_rise"}
    updated = base + [
        {"completion_tokens": 11, "refusal": False, "fingerprint": "fp2"} for _ in range(20)
    ]
    assert kinds(updated) == {"fingerprint_change"}
    no_prints = [{**v, "fingerprint": None} for v in updated[:40]] + updated[40:]
    assert kinds(no_prints) == set()  # a model that never reported one: nothing to compare


class Webhook:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            self.events.append(orjson.loads(await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_probes_raise_alarms_on_degraded_models_only(
    tmp_path: Path, ledger_at: Location
) -> None:
    hook = Webhook()
    await hook.start()
    config = make_config(
        [
            sim_model("fading", upstream="sim-large-wrongafter60"),  # wrong from call 61
            sim_model("drifting", upstream="sim-large-updateafter60"),  # new fingerprint, longer
            sim_model("refusing", upstream="sim-large-refuseafter60"),  # half refusals from 61
            sim_model("noisy", upstream="sim-large-noise25"),  # a quarter wrong, always
            sim_model("steady", upstream="sim-large"),
        ],
        **ledger_settings(ledger_at, tmp_path, flush_interval=0.05),
        quality={
            "probes": {"enabled": True, "golden": str(GOLDEN)},
            "alarms": {
                "enabled": True,
                "window": 20,
                "min_baseline": 30,
                "webhook_url_env": "HOOK",
            },
        },
    )
    async with Gateway(config, env={"HOOK": hook.url}, background=False) as gw:
        loop = gw.quality
        assert loop is not None and loop.probes is not None and loop.monitor is not None
        for _ in range(6):  # 60 calls per model: all before the change
            await loop.run_probes()
        assert await loop.monitor.check(1e12) == []
        for _ in range(3):
            await loop.run_probes()
        fired = {(e["kind"], e["subject"]) for e in loop.monitor.fired}
        assert fired == {
            ("quality_drop", "model:fading"),
            ("fingerprint_change", "model:drifting"),
            ("length_shift", "model:drifting"),
            ("refusal_rise", "model:refusing"),
            ("quality_drop", "model:refusing"),  # a refusal is no answer
        }
        body, _ = gw.metrics.exposition()  # type: ignore[union-attr]
        text = body.decode()
        counter = 'modelmix_quality_alarms_total{kind="quality_drop",source="probe",'
        assert counter + 'subject="model:fading"} 1.0' in text
        assert 'modelmix_quality_score{source="probe",subject="model:steady"} 1.0' in text
    await hook.stop()
    assert {(e["kind"], e["subject"]) for e in hook.events} == fired
    assert all(e["sender"] == "modelmix" and e["source"] == "probe" for e in hook.events)
    from modelmix.quality.store import QualityStore

    with QualityStore(ledger_at) as store:
        stored = {(a.kind, a.subject): a.cleared_at for a in store.alarms()}
    assert set(stored) == fired
    # the quality drop holds; a new fingerprint is news only until the baseline has it too
    assert stored[("quality_drop", "model:fading")] is None
    assert stored[("fingerprint_change", "model:drifting")] is not None
    listed = CliRunner().invoke(main, ["alarms", "list", "--db", str(ledger_at), "--json"])
    assert {(a["kind"], a["subject"]) for a in orjson.loads(listed.output)} == fired
    active = CliRunner().invoke(main, ["alarms", "list", "--db", str(ledger_at)])
    assert "quality_drop" in active.output and "model:fading" in active.output
    again = await asyncio.to_thread(
        CliRunner().invoke, main, ["alarms", "check", "--db", str(ledger_at)]
    )
    # the CLI's default window (30) still sees the new fingerprint; the drop is not raised twice
    assert again.exit_code == 0 and "quality_drop" not in again.output


async def test_rolling_live_quality_from_the_judge_per_model_and_route(
    tmp_path: Path, ledger_at: Location
) -> None:
    config = make_config(
        [
            sim_model("fading", upstream="sim-large-wrongafter40"),
            sim_model("judge", upstream="sim-large"),
        ],
        routes=[{"name": "r", "models": ["fading"]}],
        **ledger_settings(ledger_at, tmp_path, flush_interval=0.05),
        quality={
            "judge": {"model": "judge", "sample": 1.0},
            "alarms": {"enabled": True, "window": 20, "min_baseline": 20},
        },
    )
    async with Gateway(config, background=False) as gw:
        loop = gw.quality
        assert loop is not None and loop.monitor is not None
        for i in range(60):
            await gw.chat(
                {"model": "r", "messages": [{"role": "user", "content": f"What is {i} + 5?"}]}
            )
        await loop.flush()
        assert gw.ledger is not None
        gw.ledger.flush()
        await loop.check_alarms()
        fired = {(e["kind"], e["subject"], e["source"]) for e in loop.monitor.fired}
    assert fired == {("quality_drop", "model:fading", "live"), ("quality_drop", "route:r", "live")}


async def test_probes_run_on_their_schedule(tmp_path: Path) -> None:
    config = make_config(
        [sim_model("m", upstream="sim-large")],
        ledger={"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        quality={"probes": {"enabled": True, "golden": str(GOLDEN), "every_seconds": 0.05}},
    )
    async with Gateway(config) as gw:
        assert gw.quality is not None and gw.quality.probes is not None
        for _ in range(200):
            if gw.quality.probes.rounds >= 2:
                break
            await asyncio.sleep(0.02)
        assert gw.quality.probes.rounds >= 2
