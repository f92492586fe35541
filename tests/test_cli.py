from pathlib import Path

from click.testing import CliRunner

from modelmix.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "local.yaml"


def test_config_check_accepts_the_example() -> None:
    result = CliRunner().invoke(main, ["config", "check", str(EXAMPLE)], env={})
    assert result.exit_code == 0, result.output
    assert "OK (3 models, 2 routes" in result.output
    assert "DEMO_ANTHROPIC_KEY is not set" in result.output


def test_config_check_names_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n"
        "  - name: a\n"
        "    provider: openai\n"
        "    capabilites: {tools: true}\n"
        "    api_key: sk-live-123\n"
        "routes:\n"
        "  - name: r\n"
        "    models: [a, b]\n"
    )
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "models[0].capabilites: unknown key" in result.output
    assert "models[0].api_key: inline API keys are not allowed" in result.output
    assert "sk-live-123" not in result.output


def test_cross_reference_errors_are_reported_after_schema_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  - {name: a, provider: openai}\nroutes:\n  - {name: r, models: [b]}\n"
    )
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "routes[0].models[0]: unknown model 'b'" in result.output
