"""The cost to reserve before a call: prompt tokens plus predicted completion tokens, priced at
the most expensive model the requested route may use (so a reservation rarely falls short);
for a cascade, which may call several of its models for one request, at the sum of their
prices.

Predicted completion tokens: the request's ``max_tokens`` caps an exponentially weighted
average of what recent answers from that route/model used (``observe``), starting from
``default_completion_tokens``. All look-ups are precomputed dicts: O(1) per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from modelmix.portfolio import ModelEntry
from modelmix.types import ChatRequest

__all__ = ["CostEstimator", "count_prompt_tokens"]


def count_prompt_tokens(request: ChatRequest) -> int:
    """The request's prompt tokens (``request.facts.prompt_tokens``): its text counted exactly
    with cl100k (the tokenizer the router's costs use; other vendors' tokenizers differ by a
    few percent), plus tool calls, tool definitions, a per-message overhead and a flat
    allowance per image. Shares the router's tokenization when the request has no tools."""
    return request.facts.prompt_tokens


_ZERO = Decimal(0)
_EWMA_WEIGHT = 0.1


class CostEstimator:
    def __init__(
        self,
        portfolio: Mapping[str, ModelEntry],
        routes: Mapping[str, Iterable[str]] | None = None,
        *,
        default_completion_tokens: int = 256,
        summed: Iterable[str] = (),
    ) -> None:
        self.default_completion_tokens = default_completion_tokens
        #: name (model or route) -> (USD per input token, USD per output token), the maximum
        #: over its deployments / models
        self._rates: dict[str, tuple[Decimal, Decimal]] = {}
        for name, entry in portfolio.items():
            ins = [d.price.input_token for d in entry.deployments if d.price is not None]
            outs = [
                max(d.price.output_token, d.price.reasoning_token)
                for d in entry.deployments
                if d.price is not None
            ]
            self._rates[name] = (max(ins, default=_ZERO), max(outs, default=_ZERO))
        summed = set(summed)
        for route, models in (routes or {}).items():
            rates = [self._rates[m] for m in dict.fromkeys(models) if m in self._rates]
            if route in summed:
                self._rates[route] = (
                    sum((r[0] for r in rates), _ZERO),
                    sum((r[1] for r in rates), _ZERO),
                )
            else:
                self._rates[route] = (
                    max((r[0] for r in rates), default=_ZERO),
                    max((r[1] for r in rates), default=_ZERO),
                )
        self._completion: dict[str, float] = {}

    def completion_tokens(self, name: str, max_tokens: int | None) -> int:
        predicted = int(self._completion.get(name, self.default_completion_tokens))
        return min(predicted, max_tokens) if max_tokens else predicted

    def estimate(
        self, name: str, prompt_tokens: int, max_tokens: int | None = None
    ) -> tuple[Decimal, int]:
        """(estimated USD, estimated total tokens) for a request to model or route ``name``."""
        completion = self.completion_tokens(name, max_tokens)
        rates = self._rates.get(name)
        if rates is None:
            return _ZERO, prompt_tokens + completion
        return rates[0] * prompt_tokens + rates[1] * completion, prompt_tokens + completion

    def cost(self, name: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """USD for these tokens at ``name``'s rates (the dearest of its models)."""
        rates = self._rates.get(name)
        if rates is None:
            return _ZERO
        return rates[0] * prompt_tokens + rates[1] * completion_tokens

    def output_rate(self, name: str) -> Decimal:
        """USD per completion token at ``name``'s dearest model."""
        rates = self._rates.get(name)
        return rates[1] if rates is not None else _ZERO

    def observe(self, name: str, completion_tokens: int) -> None:
        """Feed back a finished answer's completion tokens (per requested model or route)."""
        prev = self._completion.get(name)
        if prev is None:
            self._completion[name] = float(completion_tokens)
        else:
            self._completion[name] = prev + _EWMA_WEIGHT * (completion_tokens - prev)
