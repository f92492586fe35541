"""``BlindCascadeStrategy``: the answer-blind cascade (``blind.BlindGate``) as a plan.

It calls the learned router's cheap choice, reads only the call's token counts and finish
reason (never its content), and calls the strong model when the gate's P(cheap answer good) is
under ``tau`` or the answer was cut at its token limit. ``tau`` is given, or mapped from a
``quality_target`` through the gate's held-back calibration (as served, without the do-no-harm
choice between strategies: the benchmark measures whether that choice would offer it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelmix.portfolio import ModelEntry
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.blind import blind_features
from modelmix.routing.learned.policy import pick
from modelmix.routing.learned.strategy import DEFAULT_QUALITY_TARGET, portfolio_prices
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Outcome, Plan
from modelmix.types import ChatRequest


class BlindCascadeStrategy:
    def __init__(
        self,
        name: str,
        artifact: RouterArtifact,
        portfolio: Mapping[str, ModelEntry] | None = None,
        quality_target: float | None = None,
        tau: float | None = None,
    ) -> None:
        if artifact.blind is None:
            raise ValueError(f"route {name!r}: the artifact has no answer-blind gate")
        self.name = name
        self.artifact = artifact
        self.gate = artifact.blind
        target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
        self.tau = self.gate.calibration.knob_for(target) if tau is None else tau
        models = artifact.models
        prices = {**artifact.prices, **portfolio_prices(portfolio, models)}
        self._pin = np.array([prices[m][0] for m in models])
        self._pout = np.array([prices[m][1] for m in models])
        self._strong = models.index(self.gate.strong)

    def first_call(self, text: str, prompt_tokens: int) -> tuple[int, dict[str, float]]:
        """The cheap model's index and what the gate needs of the heads for it."""
        a = self.artifact
        z = a.outputs(a.featurize(text))
        m = len(a.models)
        p = a.quality_from(z)
        cost = prompt_tokens * self._pin + a.tokens_from(z) * self._pout
        j = pick(p, cost, self.gate.first_knob)
        cat = int(np.argmax(z[2 * m + 1 :])) if a.category is not None else 0
        return j, {"p": float(p[j]), "log_tokens": float(z[m + j]), "category": float(cat)}

    def p_good(self, j: int, heads: dict[str, float], tokens: int, prompt_tokens: int) -> float:
        """The gate's P(the cheap answer is good) after the call returned ``tokens``."""
        x = blind_features(
            np.array([heads["p"]]),
            np.array([heads["log_tokens"]]),
            np.array([float(self.artifact.token_var[j])]),
            np.array([float(tokens)]),
            np.array([float(prompt_tokens)]),
            np.array([int(heads["category"])]),
            self.gate.n_categories,
        )
        return float(self.gate.p_good(x)[0])

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "blind-cascade"
        facts = request.facts
        j, heads = self.first_call(facts.text, facts.text_tokens)
        models = self.artifact.models
        decision["knob"] = {"tau": round(self.tau, 4), "first_log_wtp": self.gate.first_knob}
        decision["chosen"] = models[j]
        first: Outcome = yield Attempt(models[j])
        if j == self._strong:
            return first
        if first.ok and first.response is not None:
            tokens = first.response.usage.completion_tokens
            q = self.p_good(j, heads, tokens, facts.text_tokens)
            cut = first.response.finish_reason == "length"
            decision["blind_gate"] = {"p_good": round(q, 4), "tokens": tokens, "cut": cut}
            if q >= self.tau and not cut:
                return first
        decision["escalated"] = True
        strong: Outcome = yield Attempt(models[self._strong])
        return strong if strong.ok or not first.ok else first
