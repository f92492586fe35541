"""``modelmix policy`` without a running gateway: versions, diffs, deploys, canaries."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from modelmix.cli import main


def setup(tmp: Path) -> tuple[Path, Path]:
    config = tmp / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ledger": {"path": str(tmp / "l.db")},
                "models": [
                    {"name": "a", "provider": "openai", "base_url": "http://x.invalid/v1"},
                    {"name": "b", "provider": "openai", "base_url": "http://x.invalid/v1"},
                ],
                "routes": [{"name": "r", "models": ["a"]}],
            }
        )
    )
    policy = tmp / "p.yaml"
    policy.write_text("routes:\n  - {name: r, models: [b, a]}\n")
    return config, policy


def run(config: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["policy", *args, "--config", str(config)])
    assert result.exit_code == code, result.output
    return result.output


def test_add_show_diff_deploy_rollback(tmp_path: Path) -> None:
    config, policy = setup(tmp_path)
    v2 = run(config, "add", str(policy), "-m", "b first").strip()
    listing = run(config, "list")
    assert v2 in listing and "b first" in listing and "live, config file" in listing
    shown = run(config, "show", v2)
    assert shown.startswith(f"# policy {v2}: b first") and "models: [b, a]" in shown
    assert "-  models: [a]\n+  models: [b, a]" in run(config, "diff", "live", v2)
    assert "are the same policy" in run(config, "diff", v2, str(policy))
    assert run(config, "deploy", v2).strip() == f"live: {v2}"
    status = json.loads(run(config, "status", "--json"))
    assert status["live"] == v2 and status["events"][0]["kind"] == "deploy"
    v1 = status["events"][1]["version"]
    assert run(config, "rollback").strip() == f"rolled back: live {v2} -> {v1}"
    assert "no policy version 'nope'" in run(config, "show", "nope", code=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {name: r, models: [zz]}\n")
    assert "routes[0].models[0]: unknown model 'zz'" in run(config, "add", str(bad), code=1)


def test_canary_promote_and_abort_by_hand(tmp_path: Path) -> None:
    config, policy = setup(tmp_path)
    out = run(config, "canary", str(policy), "--share", "0.2")
    v2 = out.split()[1]
    assert "on 20% of traffic" in out
    status = run(config, "status")
    assert f"canary: {v2} on 20% (session-sticky)" in status and "not enough data" in status
    assert "promote or abort it first" in run(config, "canary", str(policy), code=1)
    assert run(config, "promote").strip().endswith(f"live {v2}")
    assert "no canary is running" in run(config, "abort", code=1)
    other = tmp_path / "o.yaml"
    other.write_text("routes:\n  - {name: r, models: [a, b]}\n")
    v3 = run(config, "canary", str(other), "--share", "0.5").split()[1]
    assert run(config, "abort").strip() == f"canary {v3}: abort; live {v2}"
    log = run(config, "log")
    assert "canary_abort" in log and "promote" in log
