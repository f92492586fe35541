"""The quality section of the config: strict keys, cross-checks, files checked before serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.config import ConfigError, parse_config


def errors(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.errors


def test_unknown_keys_and_bad_values_name_their_path() -> None:
    assert errors({"quality": {"canary": {"min_sampels": 3}}}) == [
        "quality.canary.min_sampels: unknown key"
    ]
    assert errors({"quality": {"capture": {"sample": 2}}}) == [
        "quality.capture.sample: Input should be less than or equal to 1"
    ]
    assert errors({"quality": {"probes": {"enabled": True}}}) == [
        "quality.probes: probes need a golden dataset (golden: path.jsonl)"
    ]


def test_models_named_by_the_quality_settings_must_exist() -> None:
    models = [{"name": "a", "provider": "openai"}]
    found = errors(
        {
            "models": models,
            "routes": [
                {"name": "r", "models": ["a"], "shadow": {"model": "zz"}},
                {"name": "s", "models": ["a"], "shadow": {"model": "a", "judge": "yy"}},
            ],
            "quality": {"probes": {"models": ["xx"]}},
        }
    )
    assert found == [
        "quality.probes.models[0]: unknown model 'xx'",
        "routes[0].shadow.model: unknown model 'zz'",
        "routes[0].shadow.judge: a shadow needs a judge (set it, or quality.judge)",
        "routes[1].shadow.judge: unknown model 'yy'",
    ]
    zero = {"name": "r", "models": ["a"], "shadow": {"model": "a", "sample": 0}}
    assert errors({"models": models, "routes": [zero]}) == [
        "routes[0].shadow.sample: Input should be greater than 0"
    ]
    ok = parse_config(
        {
            "models": models,
            "routes": [{"name": "r", "models": ["a"], "shadow": {"model": "a"}}],
            "quality": {"judge": {"model": "r"}},  # a route may judge
        }
    )
    assert ok.routes[0].shadow is not None and ok.routes[0].shadow.sample == 0.1


def test_a_missing_golden_set_is_caught_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("quality:\n  probes: {enabled: true, golden: nope.jsonl}\n")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "quality.probes.golden: nope.jsonl: cannot read" in result.output
    served = CliRunner().invoke(main, ["serve", "--config", str(path), "--port", "0"])
    assert served.exit_code == 2 and "quality.probes.golden" in served.output
