from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest

from modelmix.pricing import PriceOverride, resolve_price
from modelmix.types import Usage


def catalog(usage: Usage, model: str, provider_id: str) -> Decimal:
    """genai-prices' own answer, from the usage as the vendor reported it."""
    gp_usage = genai_prices.Usage(
        input_tokens=usage.prompt_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.completion_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )
    return genai_prices.calc_price(gp_usage, model, provider_id=provider_id).total_price


# (adapter kind, upstream model, base_url, genai-prices provider, usage, flat?)
CASES = [
    # OpenAI chat: cached prompt tokens and reasoning tokens
    (
        "openai",
        "gpt-4o-mini",
        "https://api.openai.com/v1",
        "openai",
        Usage(prompt_tokens=12_345, completion_tokens=2_345, cached_tokens=4_096),
        True,
    ),
    (
        "openai",
        "o3-mini",
        None,
        "openai",
        Usage(
            prompt_tokens=1_500,
            completion_tokens=9_000,
            cached_tokens=1_024,
            reasoning_tokens=8_192,
        ),
        True,
    ),
    # Anthropic: cache reads and writes (counted inside prompt_tokens), tiered by prompt size
    (
        "anthropic",
        "claude-sonnet-4-5",
        None,
        "anthropic",
        Usage(
            prompt_tokens=5_200,
            completion_tokens=800,
            cached_tokens=3_000,
            cache_write_tokens=2_000,
        ),
        False,
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        None,
        "anthropic",
        Usage(
            prompt_tokens=250_000,
            completion_tokens=800,
            cached_tokens=100_000,
            cache_write_tokens=20_000,
        ),
        False,
    ),
    (
        "anthropic",
        "claude-3-5-haiku-latest",
        "https://api.anthropic.com",
        "anthropic",
        Usage(
            prompt_tokens=5_200,
            completion_tokens=800,
            cached_tokens=3_000,
            cache_write_tokens=2_000,
        ),
        True,
    ),
    # Gemini: flat, and tiered around 200k prompt tokens
    (
        "gemini",
        "gemini-2.5-flash",
        None,
        "google",
        Usage(
            prompt_tokens=3_000, completion_tokens=1_200, cached_tokens=1_000, reasoning_tokens=700
        ),
        True,
    ),
    (
        "gemini",
        "gemini-2.5-pro",
        "https://generativelanguage.googleapis.com/v1beta",
        "google",
        Usage(prompt_tokens=210_000, completion_tokens=1_200, reasoning_tokens=1_000),
        False,
    ),
    # OpenAI-compatible gateways, recognised from the base URL
    (
        "openai",
        "anthropic/claude-sonnet-4",
        "https://openrouter.ai/api/v1",
        "openrouter",
        Usage(
            prompt_tokens=4_000, completion_tokens=600, cached_tokens=1_000, cache_write_tokens=500
        ),
        True,
    ),
    (
        "openai",
        "llama-3.3-70b-versatile",
        "https://api.groq.com/openai/v1",
        "groq",
        Usage(prompt_tokens=777, completion_tokens=333),
        True,
    ),
    # DeepSeek: off-peak discount, a time-of-day conditional price
    (
        "openai",
        "deepseek-chat",
        "https://api.deepseek.com/v1",
        "deepseek",
        Usage(prompt_tokens=9_000, completion_tokens=1_000, cached_tokens=4_000),
        False,
    ),
]


@pytest.mark.parametrize(("kind", "model", "base_url", "pid", "usage", "flat"), CASES)
def test_cost_equals_genai_prices_exactly(
    kind: str, model: str, base_url: str | None, pid: str, usage: Usage, flat: bool
) -> None:
    price = resolve_price(kind, model, base_url=base_url)
    assert price is not None
    assert price.source.startswith(f"genai-prices:{pid}/")
    assert price.exact_flat is flat
    cost = price.cost(usage)
    expected = catalog(usage, model, pid)
    assert cost > 0
    assert cost == expected, (cost, expected)
    assert cost.normalize().as_tuple() == expected.normalize().as_tuple()  # every digit


def test_cache_and_reasoning_are_billed_at_their_own_rates() -> None:
    price = resolve_price("anthropic", "claude-3-5-haiku-latest")
    assert price is not None
    # $0.8 input, $0.08 cache read, $1 cache write, $4 output per million
    usage = Usage(
        prompt_tokens=1_000_000,
        completion_tokens=1_000_000,
        cached_tokens=500_000,
        cache_write_tokens=250_000,
    )
    assert price.cost(usage) == Decimal("0.2") + Decimal("0.04") + Decimal("0.25") + Decimal(4)


def test_override_wins_and_defaults_follow_input_and_output() -> None:
    override = PriceOverride(input=Decimal("1"), output=Decimal("2"))
    price = resolve_price("openai", "gpt-4o-mini", override=override)
    assert price is not None and price.source == "config" and not price.estimated
    usage = Usage(
        prompt_tokens=3_000_000,
        completion_tokens=2_000_000,
        cached_tokens=1_000_000,
        cache_write_tokens=1_000_000,
        reasoning_tokens=1_000_000,
    )
    assert price.cost(usage) == Decimal(3 + 4)
    detailed = resolve_price(
        "unknown-kind",
        "whatever",
        override=PriceOverride(
            input=Decimal("1"),
            output=Decimal("2"),
            cached_input=Decimal("0.1"),
            cache_write=Decimal("1.25"),
            reasoning=Decimal("3"),
        ),
    )
    assert detailed is not None
    assert detailed.cost(usage) == Decimal("1") + Decimal("0.1") + Decimal("1.25") + 2 + 3


def test_unknown_models_and_providers_are_none() -> None:
    assert resolve_price("openai", "no-such-model-xyz") is None
    # an unknown provider kind still finds the model by name, flagged as an estimate
    by_name = resolve_price("mystery", "gpt-4o-mini")
    assert by_name is not None and by_name.estimated
    # a base URL the catalog does not know falls back to the adapter kind's provider
    local = resolve_price("openai", "gpt-4o-mini", base_url="http://127.0.0.1:9999/v1")
    assert local is not None and local.source == "genai-prices:openai/gpt-4o-mini"
    # and a known base URL wins over the kind: OpenRouter's own catalog entry
    routed = resolve_price("openai", "openai/gpt-4o-mini", base_url="https://openrouter.ai/api/v1")
    assert routed is not None and routed.source.startswith("genai-prices:openrouter/")


def test_estimated_when_the_catalog_prices_what_usage_cannot_carry() -> None:
    gemini = resolve_price("gemini", "gemini-2.5-flash")  # has audio-token prices
    assert gemini is not None and gemini.estimated
    mini = resolve_price("openai", "gpt-4o-mini")  # only text tokens (+ tool calls)
    assert mini is not None and not mini.estimated


def test_inconsistent_counts_are_clamped_not_raised() -> None:
    for model, kind in (("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")):
        price = resolve_price(kind, model)
        assert price is not None
        bad = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=50, reasoning_tokens=9)
        clamped = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=10, reasoning_tokens=5)
        assert price.cost(bad) == price.cost(clamped) >= 0
        assert price.cost(Usage()) == 0


def test_other_vendors_model_behind_openai_compatible_endpoint_is_an_estimate() -> None:
    price = resolve_price("openai", "gemini-1.5-flash", base_url="http://127.0.0.1:9/v1")
    assert price is not None
    assert price.source == "genai-prices:google/gemini-1.5-flash (matched by model name)"
    assert price.estimated
    assert resolve_price("openai", "no-such-model-anywhere", base_url="http://x/v1") is None
