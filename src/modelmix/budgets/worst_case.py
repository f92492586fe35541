"""Budget admission that bounds overshoot by design (issue 14, finding 2).

A hard or paced budget reserves the *worst case* a request can cost, not a guess: its prompt
tokens plus the most it may answer (its ``max_tokens``; without one, the largest
``capabilities.max_output_tokens`` of the models its route may call, or
``budgets.max_output_tokens_default`` when a model does not say), priced at the dearest of
those models. A burst is admitted only while every admitted request's worst case fits, so as
long as upstreams honour ``max_tokens``, spent + in flight never passes the budget. The
reservation is settled with the real cost when the request ends, so an answer shorter than
its worst case frees the rest at once.

An upstream that ignores ``max_tokens`` can answer more than its worst case. A stream is
watched (``StreamWatch``, installed only when a hard or paced budget applies): once its
delivered tokens, counted as they arrive, cost more than its reservation, the reservation is
extended; when a budget cannot cover the extension the stream is cut with an explicit error
event. Overshoot is then at most one network read per such stream. A non-streamed answer can
only be counted when it has arrived: its overshoot is bounded by the upstream answer size
limit (``server.limits.max_upstream_response_bytes``). ``docs/security.md`` states the bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from modelmix.budgets.enforcer import Reservation
from modelmix.budgets.errors import BudgetExceeded
from modelmix.portfolio import ModelEntry
from modelmix.tokens import count_tokens
from modelmix.types import StreamDelta

__all__ = ["StreamWatch", "WorstCase"]


class WorstCase:
    """The most completion tokens a request to a model or route may be answered with."""

    def __init__(
        self,
        portfolio: Mapping[str, ModelEntry],
        routes: Mapping[str, Iterable[str]],
        default_max: int,
    ) -> None:
        self.default_max = default_max
        self._max: dict[str, int] = {
            name: entry.capabilities.max_output_tokens or default_max
            for name, entry in portfolio.items()
        }
        for route, models in routes.items():
            self._max[route] = max(
                (self._max.get(m, default_max) for m in models), default=default_max
            )

    def completion_tokens(self, name: str, max_tokens: int | None) -> int:
        most = self._max.get(name, self.default_max)
        return min(max_tokens, most) if max_tokens else most


class StreamWatch:
    """Counts a stream's delivered tokens; extends its reservation past the worst case, or
    says to cut the stream (``__call__`` returns the error) when a budget cannot cover it."""

    __slots__ = ("_cost", "_out_rate", "_reservation", "_tokens")

    def __init__(self, reservation: Reservation, prompt_cost: Decimal, out_rate: Decimal) -> None:
        self._reservation = reservation
        self._cost = prompt_cost
        self._out_rate = out_rate
        self._tokens = 0

    def __call__(self, batch: list[StreamDelta]) -> BudgetExceeded | None:
        text = "".join(
            [d.content for d in batch if d.content]
            + [c.arguments for d in batch for c in d.tool_calls or () if c.arguments]
        )
        if not text:
            return None
        self._tokens += count_tokens(text)
        cost = self._cost + self._out_rate * self._tokens
        reservation = self._reservation
        if cost <= reservation.amount:
            return None
        # Past its worst case (the upstream ignores max_tokens): hold a quarter more, if the
        # budgets can cover it.
        extra = cost - reservation.amount + reservation.amount / 4
        if reservation.extend(extra):
            return None
        return BudgetExceeded(
            "The answer passed its hard budget while streaming (the upstream went past "
            f"max_tokens): stopped after about {self._tokens} tokens.",
            budget=reservation.label,
            retry_after=None,
            headers={"x-should-retry": "false"},
        )
