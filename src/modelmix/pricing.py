"""Prices: cost of a call as Decimal, from genai-prices' offline snapshot or a config override.

Resolving a model's prices is slow (a catalog lookup through genai-prices), so it is done once
per deployment at start-up with ``resolve_price``; the cost of a call is then a few Decimal
multiplications (``Price.cost``).

Only genai-prices' *bundled* snapshot is used: modelmix never starts its auto-updater, so no
price lookup ever touches the network.

How a usage is billed (the same decomposition genai-prices uses):

* ``cached_tokens`` at the cache-read price and ``cache_write_tokens`` at the cache-write price
  (each falls back to the input price when the model has none); the rest of ``prompt_tokens``
  at the input price. Cache writes are billed at the default (5-minute) cache-write price.
* ``reasoning_tokens`` at the reasoning price when the model has one, else as output; the rest
  of ``completion_tokens`` at the output price.
* a per-request fee, when the model has one.

Flat catalog prices are precomputed as per-token Decimals. Tiered prices (the rate depends on
the prompt size) and conditional prices (the rate depends on the date or time of day) are
delegated to genai-prices' own calculation on every call: exact, a little slower.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from modelmix.providers.specs import PROVIDERS
from modelmix.types import Usage

__all__ = ["Price", "PriceOverride", "resolve_price"]

_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
_ZERO = Decimal(0)

#: Catalog price keys that ``Usage`` bills exactly.
_MODELLED_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "output_reasoning_mtok",
        "requests_kcount",
    }
)
#: Catalog price keys for things a gateway request cannot trigger (provider-side tools, the
#: optional 1-hour cache). Their presence does not make a price an estimate.
_UNTRIGGERED_KEYS = frozenset(
    {
        "cache_write_1h_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
        "social_searches_kcount",
        "code_executions_kcount",
    }
)


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Prices set in the config, in USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None  # default: the input price
    cache_write: Decimal | None = None  # default: the input price
    reasoning: Decimal | None = None  # default: the output price


@dataclass(frozen=True, slots=True)
class Price:
    """The price of one deployment's upstream model.

    The per-token fields are USD per token. For tiered or conditional catalog prices they hold
    the rates in force at start-up for a small prompt (handy for routing estimates), while
    ``cost`` computes the exact tiered/conditional price.
    """

    source: str  # "config" | "genai-prices:<provider_id>/<model_id>"
    #: True when the catalog prices something ``Usage`` does not carry (audio, image or video
    #: tokens, document pages...), so a request using it is billed as plain text tokens.
    estimated: bool = False
    input_token: Decimal = _ZERO
    output_token: Decimal = _ZERO
    cached_token: Decimal = _ZERO
    cache_write_token: Decimal = _ZERO
    reasoning_token: Decimal = _ZERO
    per_request: Decimal = _ZERO
    _calc: Callable[[Usage], Decimal] | None = field(default=None, repr=False, compare=False)

    @property
    def exact_flat(self) -> bool:
        """True when ``cost`` uses the precomputed per-token rates (no tiers or conditions)."""
        return self._calc is None

    def cost(self, usage: Usage) -> Decimal:
        """Exact USD cost of ``usage``. Never raises on inconsistent counts: parts larger than
        their whole are clamped (cache counts to the prompt, reasoning to the completion)."""
        if self._calc is not None:
            return self._calc(usage)
        prompt = usage.prompt_tokens
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        plain_in = prompt - cached - written
        if plain_in < 0 or cached < 0 or written < 0:
            cached, written = _clamp_cache(prompt, cached, written)
            plain_in = prompt - cached - written
        completion = usage.completion_tokens
        reasoning = min(max(usage.reasoning_tokens, 0), max(completion, 0))
        total = (
            self.input_token * plain_in
            + self.output_token * (completion - reasoning)
            + self.per_request
        )
        if cached:
            total += self.cached_token * cached
        if written:
            total += self.cache_write_token * written
        if reasoning:
            total += self.reasoning_token * reasoning
        return total


def _clamp_cache(prompt: int, cached: int, written: int) -> tuple[int, int]:
    prompt = max(prompt, 0)
    cached = min(max(cached, 0), prompt)
    written = min(max(written, 0), prompt - cached)
    return cached, written


def _price_from_override(override: PriceOverride) -> Price:
    cached = override.input if override.cached_input is None else override.cached_input
    write = override.input if override.cache_write is None else override.cache_write
    reasoning = override.output if override.reasoning is None else override.reasoning
    return Price(
        source="config",
        estimated=False,
        input_token=Decimal(override.input) / _MILLION,
        output_token=Decimal(override.output) / _MILLION,
        cached_token=Decimal(cached) / _MILLION,
        cache_write_token=Decimal(write) / _MILLION,
        reasoning_token=Decimal(reasoning) / _MILLION,
    )


def _catalog_provider_id(provider: str, base_url: str | None, providers: list[Any]) -> str | None:
    """The genai-prices provider: from the base URL's api_pattern first, else the adapter kind."""
    if base_url:
        for p in providers:
            if re.match(p.api_pattern, base_url):
                return str(p.id)
    spec = PROVIDERS.get(provider.lower())
    if spec is not None:  # the registry's catalog id (``providers/specs.py``)
        return spec.price_id
    return "google" if provider.lower() == "google" else None


def _genai_usage(usage: Usage) -> Any:
    import genai_prices

    prompt = max(usage.prompt_tokens, 0)
    cached, written = _clamp_cache(prompt, usage.cached_tokens, usage.cache_write_tokens)
    completion = max(usage.completion_tokens, 0)
    reasoning = min(max(usage.reasoning_tokens, 0), completion)
    return genai_prices.Usage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )


def _rate(model_price: Any, key: str, fallback: Decimal) -> Decimal:
    value = getattr(model_price, key, None)
    if value is None:
        return fallback
    base = value if isinstance(value, Decimal) else value.base  # TieredPrices -> base rate
    return Decimal(base)


def resolve_price(
    provider: str,
    upstream_model: str,
    *,
    base_url: str | None = None,
    override: PriceOverride | None = None,
) -> Price | None:
    """The price of ``upstream_model`` served by ``provider`` (our adapter kind) at ``base_url``.

    A config ``override`` wins. Otherwise the model is looked up in genai-prices' bundled
    snapshot, under the provider whose ``api_pattern`` matches ``base_url`` (OpenRouter, Groq,
    DeepSeek, Together, Mistral...) or else the one matching the adapter kind. ``None`` when the
    model is not in the catalog. Call once per deployment at start-up, not per request.
    """
    if override is not None:
        return _price_from_override(override)

    from genai_prices import types as gp_types
    from genai_prices.data_snapshot import get_snapshot

    snapshot = get_snapshot()
    provider_id = _catalog_provider_id(provider, base_url, snapshot.providers)
    by_name_only = False
    try:
        if provider_id is None:
            raise LookupError(provider)
        gp_provider, model = snapshot.find_provider_model(upstream_model, None, provider_id, None)
    except LookupError:
        # An OpenAI-compatible endpoint serving another vendor's model (a proxy, a cloud
        # marketplace): price it as its own vendor does, flagged as an estimate.
        try:
            gp_provider, model = snapshot.find_provider_model(upstream_model, None, None, None)
        except LookupError:
            return None
        by_name_only = True

    source = f"genai-prices:{gp_provider.id}/{model.id}"
    if by_name_only:
        source += " (matched by model name)"
    now = datetime.now(tz=UTC)
    model_price = model.get_prices(now)
    priced = {k for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}
    estimated = by_name_only or bool(priced - _MODELLED_KEYS - _UNTRIGGERED_KEYS)

    input_rate = _rate(model_price, "input_mtok", _ZERO) / _MILLION
    output_rate = _rate(model_price, "output_mtok", _ZERO) / _MILLION
    rates: dict[str, Any] = {
        "input_token": input_rate,
        "output_token": output_rate,
        "cached_token": _rate(model_price, "cache_read_mtok", input_rate * _MILLION) / _MILLION,
        "cache_write_token": _rate(model_price, "cache_write_mtok", input_rate * _MILLION)
        / _MILLION,
        "reasoning_token": _rate(model_price, "output_reasoning_mtok", output_rate * _MILLION)
        / _MILLION,
        "per_request": _rate(model_price, "requests_kcount", _ZERO) / _THOUSAND,
    }

    conditional = not isinstance(model.prices, gp_types.ModelPrice)
    tiered = any(isinstance(getattr(model_price, k), gp_types.TieredPrices) for k in priced)
    calc: Callable[[Usage], Decimal] | None = None
    if conditional:

        def calc(usage: Usage) -> Decimal:
            result = model.calc_price(_genai_usage(usage), gp_provider)
            return Decimal(result.total_price)

    elif tiered:

        def calc(usage: Usage) -> Decimal:
            return Decimal(model_price.calc_price(_genai_usage(usage))["total_price"])

    return Price(source=source, estimated=estimated, _calc=calc, **rates)
