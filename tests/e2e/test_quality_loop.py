"""The quality loop end to end: a real gateway (uvicorn), the real openai SDK, the simulated
upstream with models whose quality differs on purpose.

* feedback: ``POST /v1/feedback`` with keys (own requests only, admin any), OpenAI errors;
* capture, online judge and shadow traffic, off the request path (a slow shadow model does not
  slow the client; too many at once are dropped);
* versioned policies: a canary of a better policy is promoted, one of a worse policy rolled
  back, by the gateway itself, on judge-scored guardrails; a manual rollback; every ledger row
  names the policy version that served it.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
import yaml
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.config import load_config
from modelmix.ledger.db import Location
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.opening import open_ledger
from tests.conftest import BACKENDS, ledger_location, ledger_settings
from tests.e2e.conftest import RunningGateway

ADMIN = "admin-secret-key"


def sim(name: str, upstream: str, provider: str = "openai") -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "model": upstream,
        "base_url": "builtin:simulated",
        "price": {"input": "1", "output": "2"},
    }


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def rows(db: Location, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = open_ledger(db)
    try:
        cur: Any = conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def write_config(tmp: Path, data: dict[str, Any]) -> Path:
    path = tmp / "modelmix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- feedback, capture, judge, shadow -----------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def observed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("observed")
    db = ledger_location(request, tmp)
    keystore = KeyStore(db)
    keys = {name: keystore.create(name)[1] for name in ("alice", "bob")}
    keystore.close()
    data = {
        "server": {"admin_key_env": "MM_ADMIN"},
        **ledger_settings(db, tmp, flush_interval=0.05),
        "models": [
            sim("small", "sim-small"),
            sim("large", "sim-large"),
            sim("slow-large", "sim-slow400-large"),
        ],
        "routes": [
            {"name": "calc", "models": ["small"], "shadow": {"model": "large", "sample": 1.0}},
            {
                "name": "slowshadow",
                "models": ["small"],
                "shadow": {"model": "slow-large", "sample": 1.0},
            },
        ],
        "quality": {
            "capture": {"sample": 1.0},
            "judge": {"model": "large", "sample": 1.0},
            "max_background": 6,
        },
    }
    config = load_config(write_config(tmp, data))
    running = RunningGateway(config, env={"MM_ADMIN": ADMIN})
    yield running, keys
    running.stop()


def sdk(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def ask(client: openai.OpenAI, model: str, prompt: str, **kw: Any) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], **kw
    )
    reply = raw.parse()
    return raw.headers["x-modelmix-request-id"], reply.choices[0].message.content or ""


def feedback(client: openai.OpenAI, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/feedback", body=body, cast_to=httpx.Response)
    assert response.status_code == 201
    return response.json()  # type: ignore[no-any-return]


def test_feedback_is_stored_with_the_request_and_keys_are_enforced(
    observed: tuple[RunningGateway, dict[str, str]],
) -> None:
    gw, keys = observed
    alice, bob, admin = sdk(gw, keys["alice"]), sdk(gw, keys["bob"]), sdk(gw, ADMIN)
    request_id, answer = ask(alice, "small", "What is 12 * 7 + 5 - 3?")
    assert answer.endswith("= 87")  # wrong: the small model's skill stops at 2 operators
    # right after the answer: the row may still be queued for the ledger; it is found anyway
    stored = feedback(
        alice, {"request_id": request_id, "label": "thumbs_down", "comment": "off by one"}
    )
    assert stored["score"] == 0.0 and stored["label"] == "thumbs_down"
    assert feedback(admin, {"request_id": request_id, "score": 0.25})["score"] == 0.25
    with pytest.raises(openai.PermissionDeniedError) as denied:
        bob.post("/feedback", body={"request_id": request_id, "score": 1}, cast_to=httpx.Response)
    assert denied.value.code == "not_your_request"
    with pytest.raises(openai.NotFoundError) as missing:
        alice.post("/feedback", body={"request_id": "mm-nope", "score": 1}, cast_to=httpx.Response)
    assert missing.value.code == "request_not_found"
    for body, param in (
        ({"request_id": request_id, "score": 2}, "score"),
        ({"request_id": request_id}, "score"),
        ({"score": 1}, "request_id"),
        ({"request_id": request_id, "score": 1, "stars": 5}, "stars"),
        ({"request_id": request_id, "score": True}, "score"),
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            alice.post("/feedback", body=body, cast_to=httpx.Response)
        assert bad.value.param == param, body
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "mm-wrong").post(
            "/feedback", body={"request_id": request_id, "score": 1}, cast_to=httpx.Response
        )
    raw = httpx.post(
        gw.url + "/v1/feedback", content=b"{", headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    huge = httpx.post(
        gw.url + "/v1/feedback",
        content=b'{"comment": "' + b"x" * 70_000 + b'"}',
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    db = gw.gateway.config.ledger_location
    got = rows(
        db,
        "SELECT f.score, f.label, f.comment, r.final_model, r.key_id FROM feedback f "
        "JOIN requests r ON r.id = f.request_id WHERE f.request_id = ? ORDER BY f.id",
        request_id,
    )
    assert [(r["score"], r["label"], r["final_model"]) for r in got] == [
        (0.0, "thumbs_down", "small"),
        (0.25, None, "small"),
    ]
    assert got[0]["comment"] == "off by one"


def test_capture_judge_and_shadow_land_in_the_ledger(
    observed: tuple[RunningGateway, dict[str, str]],
) -> None:
    gw, keys = observed
    alice = sdk(gw, keys["alice"])
    prompts = [f"What is {a} * 2 + {a} - 1?" for a in range(1, 7)] + [
        f"What is {a} + {a}?" for a in range(1, 7)
    ]
    ids = [ask(alice, "calc", p)[0] for p in prompts]
    stream = alice.chat.completions.create(
        model="calc", messages=[{"role": "user", "content": "What is 40 + 2?"}], stream=True
    )
    streamed_text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed_text.endswith("= 42")
    db = gw.gateway.config.ledger_location
    wait_for(
        lambda: len(rows(db, "SELECT 1 FROM eval_results WHERE run_id = 'shadow:calc'")) >= 26,
        what="shadow results",
    )
    wait_for(lambda: len(rows(db, "SELECT 1 FROM samples")) >= 13, what="samples")
    sample = rows(db, "SELECT * FROM samples WHERE request_id = ?", ids[0])[0]
    assert sample["model"] == "small" and sample["route"] == "calc"
    assert '"What is 1 * 2 + 1 - 1?"' in sample["messages"] and sample["answer"].endswith("= 3")
    streamed = rows(db, "SELECT answer FROM samples WHERE answer LIKE '%40 + 2 = 42'")
    assert streamed, "the streamed answer is captured too"

    # the online judge: the small model is wrong on three operators, right on one
    def judged() -> dict[str, float] | None:
        found = {
            r["request_id"]: r["score"]
            for r in rows(db, "SELECT request_id, score FROM judgements WHERE source = 'judge'")
        }
        return found if all(i in found for i in ids) else None

    scores = wait_for(judged, what="judgements")
    assert [scores[i] for i in ids] == [0.0] * 6 + [1.0] * 6
    # the shadow: the same prompts answered by the large model, judged side by side
    result = CliRunner().invoke(main, ["eval", "matrix", "shadow:calc", "--db", str(db), "--json"])
    cells = {(c["model"], c["task"]): c for c in json.loads(result.output)}
    assert cells[("small", "calc")]["n"] == cells[("large", "calc")]["n"] >= 13
    assert cells[("large", "calc")]["mean"] == 1.0
    assert cells[("small", "calc")]["mean"] < 0.6
    # mirrored calls are in the ledger, with their cost (rows land in the writer's next batch)
    wait_for(
        lambda: rows(db, "SELECT COUNT(*) AS n FROM requests WHERE api = 'shadow'")[0]["n"] >= 13,
        what="shadow calls in the ledger",
    )


def test_a_slow_shadow_never_slows_the_client_and_is_shed_under_load(
    observed: tuple[RunningGateway, dict[str, str]],
) -> None:
    gw, keys = observed
    alice = sdk(gw, keys["alice"])
    quality = gw.gateway.quality
    assert quality is not None
    started_before = quality.pool.started
    request_id, _ = ask(alice, "slowshadow", "What is 5 + 6?")
    # the answer is back while its shadow (400 ms upstream) is still running
    assert quality.pool.started == started_before + 2  # its judge call and its shadow
    assert quality.pool.in_flight >= 1
    db = gw.gateway.config.ledger_location
    assert not rows(db, "SELECT 1 FROM eval_results WHERE item_id = ?", request_id)
    dropped_before = quality.pool.dropped
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda i: ask(alice, "slowshadow", f"What is {i} + 1?"), range(24)))
    assert quality.pool.dropped > dropped_before  # at most max_background in flight
    wait_for(
        lambda: rows(
            db,
            "SELECT 1 FROM eval_results WHERE run_id = 'shadow:slowshadow' AND item_id = ?",
            request_id,
        ),
        what="the slow shadow's result",
    )


# -- canary: promote a better policy, roll back a worse one -----------------------------------


@pytest.fixture(params=BACKENDS)
def canary_gateway(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningGateway, Path]]:
    db = ledger_location(request, tmp_path)
    data = {
        **ledger_settings(db, tmp_path, flush_interval=0.05),
        "models": [
            sim("meh", "sim-acc50"),  # right on half the prompts
            sim("good", "sim-large"),
            sim("bad", "sim-acc10"),
            sim("judge", "sim-large"),
        ],
        "routes": [{"name": "calc", "models": ["meh"]}, {"name": "other", "models": ["good"]}],
        "quality": {
            "judge": {"model": "judge", "sample": 1.0},
            "policy": {"poll_seconds": 0.1},
            "canary": {
                "check_seconds": 0.2,
                "min_samples": 20,
                "max_looks": 20,
                "error_margin": 0.05,
            },
            "max_background": 64,
        },
    }
    path = write_config(tmp_path, data)
    running = RunningGateway(load_config(path), env={})
    yield running, path
    running.stop()


def policy_cli(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["policy", *args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def traffic(gw: RunningGateway, n: int, start: int = 0) -> None:
    client = sdk(gw, "unused")

    def one(i: int) -> None:
        client.chat.completions.create(
            model="calc",
            messages=[{"role": "user", "content": f"What is {i} + {2 * i + 7}?"}],
            user=f"user-{i % 97}",
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(start, start + n)))
    gw.flush()


def state(db: Location) -> dict[str, Any]:
    return rows(db, "SELECT * FROM policy_state")[0]


def test_canary_promotes_a_better_policy_and_rolls_back_a_worse_one(
    canary_gateway: tuple[RunningGateway, Path], tmp_path: Path
) -> None:
    gw, config = canary_gateway
    db = gw.gateway.config.ledger_location
    v1 = state(db)["live"]
    better = tmp_path / "better.yaml"
    better.write_text(
        "routes:\n  - {name: calc, models: [good]}\n  - {name: other, models: [good]}\n"
    )
    out = policy_cli(
        config, "canary", str(better), "--share", "0.5", "--sticky", "user", "-m", "good model"
    )
    v2 = out.split()[1]
    wait_for(lambda: gw.gateway.quality and gw.gateway.quality.state.canary == v2, what="canary")
    batch = 0
    while state(db)["canary"] is not None:
        assert batch < 12, "the canary never decided"
        traffic(gw, 40, start=40 * batch)
        batch += 1
        time.sleep(0.3)
    assert state(db)["live"] == v2
    events = rows(db, "SELECT kind, version FROM policy_events ORDER BY seq")
    assert ("promote", v2) in [(e["kind"], e["version"]) for e in events]
    # during the canary each row names the version (and so the model) that served it
    served = rows(
        db,
        "SELECT policy_version, final_model FROM requests WHERE api = 'openai' "
        "AND json_extract(decision, '$.canary.candidate') = ?",
        v2,
    )
    versions = {r["policy_version"] for r in served}
    assert versions == {v1, v2}
    assert all((r["final_model"] == "good") == (r["policy_version"] == v2) for r in served)
    # the promoted policy serves everyone now
    wait_for(lambda: gw.gateway.policy_version == v2, what="promotion applied")
    traffic(gw, 4, start=10_000)
    latest = rows(
        db,
        "SELECT policy_version, final_model FROM requests WHERE api = 'openai' "
        "ORDER BY started_at DESC LIMIT 4",
    )
    assert {(r["policy_version"], r["final_model"]) for r in latest} == {(v2, "good")}

    worse = tmp_path / "worse.yaml"
    worse.write_text(
        "routes:\n  - {name: calc, models: [bad]}\n  - {name: other, models: [good]}\n"
    )
    v3 = policy_cli(config, "canary", str(worse), "--share", "0.5").split()[1]
    wait_for(lambda: gw.gateway.quality and gw.gateway.quality.state.canary == v3, what="canary 2")
    batch = 0
    while state(db)["canary"] is not None:
        assert batch < 12, "the second canary never decided"
        traffic(gw, 40, start=20_000 + 40 * batch)
        batch += 1
        time.sleep(0.3)
    assert state(db)["live"] == v2  # the worse candidate never went live
    last = rows(db, "SELECT kind, version, detail FROM policy_events ORDER BY seq DESC LIMIT 1")[0]
    assert (last["kind"], last["version"]) == ("canary_rollback", v3)
    assert "quality" in last["detail"]
    status = policy_cli(config, "status")
    assert f"live: {v2}" in status and "canary_rollback" in status
    body = json.loads(policy_cli(config, "status", "--json"))
    assert body["live"] == v2 and body["canary"] is None
    assert body["events"][0]["kind"] == "canary_rollback"

    # a manual rollback to the first version; the gateway picks it up
    out = policy_cli(config, "rollback", v1)
    assert f"live {v2} -> {v1}" in out
    wait_for(lambda: gw.gateway.policy_version == v1, what="rollback applied")
    listing = policy_cli(config, "list")
    assert v1 in listing and v2 in listing and v3 in listing


def test_policy_arms_are_per_version_in_the_ledger(
    canary_gateway: tuple[RunningGateway, Path],
) -> None:
    gw, _ = canary_gateway
    traffic(gw, 3)
    gw.flush()
    db = gw.gateway.config.ledger_location
    live = state(db)["live"]
    by_version: dict[str, int] = defaultdict(int)
    for r in rows(db, "SELECT policy_version FROM requests"):
        by_version[r["policy_version"]] += 1
    assert by_version[live] >= 3  # judge calls are stamped too: they run under the same policy
