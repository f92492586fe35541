"""``LearnedStrategy``: predict P(good answer) and cost per candidate, pick by the user's knob.

Knobs (in order of precedence):

* ``wtp``: willingness to pay, USD per unit of quality: maximise ``wtp·P(good) - cost``;
* ``quality_target``: keep this share of the best model's quality at the lowest cost. It maps to
  a willingness to pay through the artifact's calibration table, measured on held-back prompts;
* ``max_cost``: USD per request; models predicted to cost more are not chosen (when every model
  would, the cheapest is).

With ``profiles`` (model -> quality in [0, 1], e.g. from config or evals) the router works for
any portfolio: P(good) = sigmoid(logit(quality) + easiness - mean easiness), where the
prompt's easiness comes from the artifact's difficulty head, and ``quality_target`` picks
the cheapest model whose P(good) reaches that share of the best candidate's.

The plan yields the chosen model, then falls back to the others by value if it fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelmix.errors import GatewayError
from modelmix.portfolio import ModelEntry
from modelmix.routing.candidates import screen
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.features import prompt_text
from modelmix.routing.learned.policy import logit, pick
from modelmix.routing.learned.tokens import count_tokens
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Outcome, Plan
from modelmix.types import ChatRequest

DEFAULT_QUALITY_TARGET = 0.95


def portfolio_prices(
    portfolio: Mapping[str, ModelEntry] | None, models: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """USD per (input, output) token for the models whose deployments have a price."""
    out: dict[str, tuple[float, float]] = {}
    if portfolio is None:
        return out
    for m in models:
        entry = portfolio.get(m)
        if entry and entry.deployments and entry.deployments[0].price is not None:
            price = entry.deployments[0].price
            out[m] = (float(price.input_token), float(price.output_token))
    return out


class LearnedStrategy:
    def __init__(
        self,
        name: str,
        models: Sequence[str],
        artifact: RouterArtifact,
        portfolio: Mapping[str, ModelEntry] | None = None,
        quality_target: float | None = None,
        max_cost: float | None = None,
        wtp: float | None = None,
        profiles: Mapping[str, float] | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.name = name
        self.artifact = artifact
        self.portfolio = portfolio
        self.quality_target = quality_target
        self.max_cost = max_cost
        self.wtp = wtp
        self.profiles = dict(profiles) if profiles else None
        self.models = list(models) or list(artifact.models)
        if self.profiles is None:
            unknown = [m for m in self.models if m not in artifact.models]
            if unknown:
                raise ValueError(
                    f"route {name!r}: the router artifact does not know {', '.join(unknown)}; "
                    "give each model a quality profile instead"
                )
            self._idx = np.array([artifact.models.index(m) for m in self.models])
        else:
            missing = [m for m in self.models if m not in self.profiles]
            if missing:
                raise ValueError(f"route {name!r}: no quality profile for {', '.join(missing)}")
            self._idx = np.zeros(len(self.models), dtype=int)
            self._profile_logit = np.array([logit(self.profiles[m]) for m in self.models])
            self._mean_easiness = float(artifact.difficulty.b[0])
        merged = {**artifact.prices, **portfolio_prices(portfolio, self.models), **(prices or {})}
        missing_price = [m for m in self.models if m not in merged]
        if missing_price:
            raise ValueError(f"route {name!r}: no price for {', '.join(missing_price)}")
        self._pin = np.array([merged[m][0] for m in self.models])
        self._pout = np.array([merged[m][1] for m in self.models])
        if self.wtp is not None:
            self._log_wtp: float | None = math.log10(max(self.wtp, 1e-12))
        elif self.profiles is None:
            target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
            self._log_wtp = artifact.calibration.knob_for(target)
        else:
            self._log_wtp = None

    def predict(self, text: str) -> tuple[np.ndarray, np.ndarray, int]:
        """P(good), predicted cost (USD) per route model, and the prompt's tokens."""
        f = self.artifact.featurize(text)
        p_all, toks_all = self.artifact.predict(f)
        if self.profiles is None:
            p = p_all[self._idx].astype(np.float64)
            toks = toks_all[self._idx].astype(np.float64)
        else:
            shift = self.artifact.easiness(f) - self._mean_easiness
            p = 1.0 / (1.0 + np.exp(-(self._profile_logit + shift)))
            toks = np.full(len(self.models), float(np.median(toks_all)))
        prompt_tokens = count_tokens(text)
        cost = prompt_tokens * self._pin + toks * self._pout
        return p, cost, prompt_tokens

    def choose(self, p: np.ndarray, cost: np.ndarray, eligible: np.ndarray) -> int:
        allowed = eligible.copy()
        if self.max_cost is not None:
            allowed &= cost <= self.max_cost
            if not allowed.any():
                allowed = eligible.copy()
                allowed[:] = False
                allowed[int(np.argmin(np.where(eligible, cost, np.inf)))] = True
        if self._log_wtp is not None:
            return pick(p, cost, self._log_wtp, allowed)
        target = DEFAULT_QUALITY_TARGET if self.quality_target is None else self.quality_target
        top = float(np.max(np.where(allowed, p, 0.0)))
        ok = allowed & (p >= target * top)
        return int(np.argmin(np.where(ok, cost, np.inf)))

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "learned"
        if self.portfolio is not None:
            screened = screen(self.models, self.portfolio, request, needs)
            decision["screened"] = [c.as_dict() for c in screened if not c.eligible]
            eligible = np.array([c.eligible for c in screened])
        else:
            eligible = np.ones(len(self.models), dtype=bool)
        if not eligible.any():
            raise GatewayError(
                "invalid_request",
                f"No model of {self.name!r} can serve this request.",
                param="model",
                code="no_capable_model",
            )
        p, cost, prompt_tokens = self.predict(prompt_text(request.messages))
        choice = self.choose(p, cost, eligible)
        decision["knob"] = {
            "quality_target": self.quality_target,
            "max_cost": self.max_cost,
            "wtp": self.wtp,
            "log_wtp": None if self._log_wtp is None else round(self._log_wtp, 3),
            "mode": "profiles" if self.profiles else "artifact",
        }
        decision["prompt_tokens"] = prompt_tokens
        decision["candidates"] = [
            {"model": m, "p_good": round(float(p[i]), 4), "cost": float(f"{cost[i]:.3g}")}
            for i, m in enumerate(self.models)
            if eligible[i]
        ]
        decision["chosen"] = self.models[choice]
        wtp = 10.0 ** (self._log_wtp if self._log_wtp is not None else 0.0)
        value = p * wtp - cost
        order = [choice] + [
            int(i) for i in np.argsort(-value) if int(i) != choice and eligible[int(i)]
        ]
        last: Outcome | None = None
        for i in order:
            last = yield Attempt(self.models[i])
            if last.ok:
                if i != choice:
                    decision["fallback_to"] = self.models[i]
                return last
        return last
