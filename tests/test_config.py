from pathlib import Path

import pytest

from modelmix.config import ConfigError, load_config, parse_config
from modelmix.defaults import default_config


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.errors


def test_unknown_keys_name_their_dotted_path() -> None:
    errors = errors_of(
        {
            "models": [{"name": "a", "provider": "openai", "capabilities": {"toolz": True}}],
            "engine": {"timeouts": {"conect": 3}},
            "bogus": 1,
        }
    )
    assert "models[0].capabilities.toolz: unknown key" in errors
    assert "engine.timeouts.conect: unknown key" in errors
    assert "bogus: unknown key" in errors


def test_wrong_types_and_values_are_reported_with_paths() -> None:
    errors = errors_of({"models": [{"name": "a", "provider": "nope", "weight": -1}]})
    assert any(e.startswith("models[0].provider:") for e in errors)
    assert any(e.startswith("models[0].weight:") for e in errors)


def test_inline_api_keys_are_refused() -> None:
    errors = errors_of({"models": [{"name": "a", "provider": "openai", "api_key": "sk-123"}]})
    assert errors == [
        "models[0].api_key: inline API keys are not allowed; name the environment variable "
        "with api_key_env"
    ]


def test_routes_must_name_known_models() -> None:
    errors = errors_of(
        {
            "models": [{"name": "a", "provider": "openai"}],
            "routes": [
                {"name": "r", "models": ["a", "b"]},
                {"name": "a", "models": ["a"]},
                {"name": "s", "strategy": "rules", "rules": [{"when": {}, "models": ["zz"]}]},
            ],
        }
    )
    assert "routes[0].models[1]: unknown model 'b'" in errors
    assert "routes[1].name: 'a' is also a model name" in errors
    assert "routes[2].rules[0].models[0]: unknown model 'zz'" in errors


def test_duplicate_model_names() -> None:
    errors = errors_of(
        {"models": [{"name": "a", "provider": "openai"}, {"name": "a", "provider": "groq"}]}
    )
    assert errors == ["models: model name 'a' is defined twice"]


def test_hash_is_stable_and_changes_with_content() -> None:
    a = parse_config({"models": [{"name": "a", "provider": "openai"}]})
    b = parse_config({"models": [{"name": "a", "provider": "openai"}]})
    c = parse_config({"models": [{"name": "a", "provider": "openai", "weight": 2}]})
    assert a.hash() == b.hash() != c.hash()


def test_load_config_reports_yaml_and_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.errors[0].startswith("(yaml):")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert info.value.errors[0].startswith("(file): cannot read")


def test_default_config_adds_models_for_keys_in_the_environment() -> None:
    bare = default_config({})
    assert {m.name for m in bare.models} >= {"sim-small", "sim-medium", "sim-large"}
    assert bare.routes[0].name == "auto"
    assert bare.routes[0].models == ["sim-small", "sim-medium", "sim-large"]
    with_keys = default_config({"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"})
    names = {m.name for m in with_keys.models}
    assert {"gpt-4o-mini", "claude-3-5-haiku-latest"} <= names
    assert "sim-small" not in with_keys.routes[0].models


def test_zero_config_auto_route_is_cheapest_first() -> None:
    from modelmix.defaults import _FROM_ENV
    from modelmix.portfolio import build_portfolio
    from modelmix.types import Usage

    env = {variable: "key" for variable, _ in _FROM_ENV}
    config = default_config(env)
    auto = next(r for r in config.routes if r.name == "auto")
    assert set(auto.models) == {m["name"] for _, models in _FROM_ENV for m in models}
    portfolio = build_portfolio(config, env)
    typical = Usage(prompt_tokens=3_000, completion_tokens=1_000)
    costs = []
    for name in auto.models:
        price = portfolio[name].deployments[0].price  # what the ledger will bill
        assert price is not None, name
        costs.append(price.cost(typical))
    assert costs == sorted(costs)


def test_budgets_section_is_part_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        """
models:
  - {name: a, provider: openai}
  - {name: b, provider: openai}
routes:
  - {name: r, models: [a, b], baseline: b}
budgets:
  global:
    - {kind: hard, period: month, limit_usd: 500}
  teams:
    search: [{kind: soft, period: day, limit_usd: 20}]
  tags:
    "project:atlas": [{kind: paced, period: month, limit_usd: 300, burst_usd: 15}]
  rate_limits:
    keys_default: {rpm: 600}
    models: {a: {rpm: 100, tpm: 200000}}
"""
    )
    cfg = load_config(path)
    assert [(s.scope, s.subject, s.kind) for s in cfg.budgets.specs()] == [
        ("global", "*", "hard"),
        ("team", "search", "soft"),
        ("tag", "project:atlas", "paced"),
    ]
    assert cfg.routes[0].baseline == "b"
    assert cfg.budgets.store == "shared"


def test_budget_and_baseline_errors_name_their_paths() -> None:
    errors = errors_of(
        {
            "models": [{"name": "a", "provider": "openai"}],
            "routes": [{"name": "r", "models": ["a"], "baseline": "nope"}],
            "budgets": {
                "global": [{"limit_usd": 1, "colour": "red"}],
                "teams": {"t": [{"limit_usd": -1}]},
            },
        }
    )
    assert "budgets.global[0].colour: unknown key" in errors
    assert any(e.startswith("budgets.teams.t[0].limit_usd:") for e in errors)
    errors = errors_of(
        {
            "models": [{"name": "a", "provider": "openai"}],
            "routes": [{"name": "r", "models": ["a"], "baseline": "nope"}],
            "budgets": {"rate_limits": {"models": {"zz": {"rpm": 1}}}},
        }
    )
    assert "routes[0].baseline: unknown model 'nope'" in errors
    assert "budgets.rate_limits.models.zz: unknown model" in errors


def test_ledger_url_selects_postgres_and_is_checked(tmp_path: Path) -> None:
    from modelmix.ledger.db import display

    url = "postgresql://mm:s3cret@db.internal:5432/modelmix"
    config = parse_config({"ledger": {"url": url}, "data_dir": str(tmp_path)})
    assert config.ledger_location == url
    # the counters file of a PostgreSQL ledger is named after its URL, in the data directory
    assert config.ledger_local_path.parent == tmp_path
    assert (
        config.ledger_local_path
        != parse_config({"ledger": {"url": url + "2"}, "data_dir": str(tmp_path)}).ledger_local_path
    )
    assert display(url) == "postgresql://mm:***@db.internal:5432/modelmix"
    sqlite = parse_config({"ledger": {"path": str(tmp_path / "l.db")}})
    assert sqlite.ledger_location == sqlite.ledger_path == sqlite.ledger_local_path
    assert any("postgresql:// URL" in e for e in errors_of({"ledger": {"url": "mysql://x/y"}}))
    both = errors_of({"ledger": {"url": url, "path": "l.db"}})
    assert any("not both" in e for e in both)
