"""``LearnedStrategy``: predict P(good answer) and cost per candidate, pick by the user's knob.

Knobs (in order of precedence):

* ``wtp``: willingness to pay, USD per unit of quality: maximise ``wtp·P(good) - cost``;
* ``quality_target``: keep this share of the best model's quality at the lowest cost. It maps to
  a willingness to pay through the artifact's calibration table, measured on held-back prompts;
* ``max_cost``: USD per request; models predicted to cost more are not chosen (when every model
  would, the cheapest is).

With ``profiles`` (model -> quality in [0, 1], e.g. from config or evals) the router works for
any portfolio: P(good) = sigmoid(logit(quality) + easiness - mean easiness), where the
prompt's easiness comes from the artifact's difficulty head and its completion length from the
typical-length head (two outputs, evaluated in plain Python), and ``quality_target`` picks,
per prompt, the cheapest model whose P(good) reaches a threshold times the best candidate's;
the artifact maps the target to that threshold with a table measured on held-back prompts
(for the portfolio it was trained on, with each model's mean score as its profile).

The plan yields the chosen model, then falls back to the others by value if it fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelmix.budgets.degrade import degraded_quality_target, degraded_wtp
from modelmix.errors import GatewayError
from modelmix.personal.offsets import personalise
from modelmix.portfolio import ModelEntry
from modelmix.prompt_chunks import LONG_TEXT
from modelmix.routing.candidates import no_candidate_error, screen
from modelmix.routing.learned import safety
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.features import Features, FloatArray, sparse_features
from modelmix.routing.learned.model import FoldedHeads, LinearHeads, PairHeads, sigmoid
from modelmix.routing.learned.policy import logit, pick
from modelmix.routing.learned.profile_shift import raise_threshold
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Outcome, Plan
from modelmix.tokens import count_tokens
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


def _argmin(values: list[float]) -> int:
    """Index of the first smallest value (as ``np.argmin``)."""
    return min(range(len(values)), key=values.__getitem__)


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
        setting: safety.Option | None = None,
    ) -> None:
        self.name = name
        self.artifact = artifact
        self.portfolio = portfolio
        self.quality_target = quality_target
        self.max_cost = max_cost
        self.wtp = wtp
        self.profiles = dict(profiles) if profiles else None
        self.models = list(models) or list(artifact.models)
        self._shift: FloatArray | None = None
        if self.profiles is None:
            self._init_artifact_heads()
        else:
            self._init_profile_heads(self.profiles)
        self._init_prices(prices)
        if self.wtp is not None:
            self._log_wtp: float | None = math.log10(max(self.wtp, 1e-12))
        elif self.profiles is None:
            target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
            self._log_wtp = artifact.calibration.knob_for(target)
        else:
            self._log_wtp = None
        #: Do no harm: the setting served for the target is the cheapest one measured safe
        #: out of fold (``safety``); it may be one single model (then ``_best``).
        self._best: int | None = None
        self.safety_note: str | None = None
        self._choice: safety.Choice | None = None
        self._served: str | None = None
        self._init_unfamiliar(setting)
        # The profile router keeps the cheapest model within ``threshold`` of the best
        # candidate's P(good), per prompt; the artifact's held-back table maps the target to it.
        target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
        profile_cal = artifact.profile_target_calibration
        self._threshold = (
            profile_cal.knob_for(target) if self.profiles and profile_cal is not None else target
        )
        self._init_unplaced()
        self._knob = {
            "quality_target": quality_target,
            "max_cost": max_cost,
            "wtp": wtp,
            "log_wtp": None if self._log_wtp is None else round(self._log_wtp, 3),
            "mode": "profiles" if self.profiles else "artifact",
        }
        if self.profiles:
            self._serve_profile_safely(quality_target, setting)
            self._knob["threshold"] = round(self._threshold, 3)
        self._knob.update(self._served_knob())

    def _init_artifact_heads(self) -> None:
        """The artifact's quality and token heads of the route's models only (one folded
        matrix product per prompt), with the predicted category's prior when it has one."""
        artifact = self.artifact
        unknown = [m for m in self.models if m not in artifact.models]
        if unknown:
            raise ValueError(
                f"route {self.name!r}: the router artifact does not know {', '.join(unknown)}; "
                "give each model a quality profile instead"
            )
        self._idx = np.array([artifact.models.index(m) for m in self.models])
        q, t = artifact.quality, artifact.tokens
        # quality and token heads of the route's models only: [quality (m) | tokens (m)]
        heads = [
            LinearHeads(q.W[:, self._idx], q.b[self._idx], q.mu, q.sd),
            LinearHeads(t.W[:, self._idx], t.b[self._idx], t.mu, t.sd),
        ]
        # the predicted category's prior, per route model (``RouterArtifact.quality_from``)
        if artifact.prior_shift is not None and artifact.category is not None:
            heads.append(artifact.category)
            self._shift = artifact.prior_shift[:, self._idx]
        self._heads = FoldedHeads(heads)
        self._platt = artifact.platt[self._idx]
        self._token_var = artifact.token_var[self._idx]

    def _init_profile_heads(self, profiles: Mapping[str, float]) -> None:
        """Quality profiles: the artifact's difficulty and typical-tokens heads, shared by
        every model, shifted per model by its profile."""
        missing = [m for m in self.models if m not in profiles]
        if missing:
            raise ValueError(f"route {self.name!r}: no quality profile for {', '.join(missing)}")
        artifact = self.artifact
        self._idx = np.zeros(len(self.models), dtype=int)
        self._profile_logit = [logit(profiles[m]) for m in self.models]
        self._mean_easiness = float(artifact.difficulty.b[0])
        typical, self._token_shift = artifact.typical_tokens()
        self._pair = PairHeads(artifact.difficulty, typical)  # (easiness, log tokens)

    def _init_prices(self, prices: Mapping[str, tuple[float, float]] | None) -> None:
        """USD per input and output token per route model: the artifact's, overridden by the
        portfolio's, overridden by ``prices``."""
        merged = {
            **self.artifact.prices,
            **portfolio_prices(self.portfolio, self.models),
            **(prices or {}),
        }
        missing = [m for m in self.models if m not in merged]
        if missing:
            raise ValueError(f"route {self.name!r}: no price for {', '.join(missing)}")
        self._pin = [merged[m][0] for m in self.models]
        self._pout = [merged[m][1] for m in self.models]

    def _init_unfamiliar(self, setting: safety.Option | None) -> None:
        """The served setting (do no harm), the best model's peers, and what a prompt unlike
        the training prompts gets."""
        artifact, target = self.artifact, self.quality_target
        #: A prompt unlike the training prompts (``RouterArtifact.is_novel``): the heads'
        #: predictions cannot be trusted there, so it gets the single models that keep the
        #: target by themselves (the safe model at a high target, never a cheaper guess).
        self._novel_to: safety.Choice | None = None
        #: The best model's peers (``safety.peers``) in the shares the served model was
        #: chosen from (pooled; averaged over the tasks for an unfamiliar prompt): serving one
        #: of them, the route serves the one this prompt's predicted tokens make cheapest.
        self._peers: list[int] = []
        self._novel_peers: list[int] = []
        if self.profiles is None:
            self._serve_safely(target, setting)
            self._peers = self._indices(safety.peers(safety.singles(artifact.meta, self.models)))
            task = safety.task_singles(artifact.meta, self.models)
            self._novel_peers = self._indices(safety.peers(task))
        if setting is None and self.wtp is None and artifact.checks_novelty:
            # the single models that keep the target on a new task by themselves (their
            # share averaged over the training tasks; profiles: only when the artifact
            # measured every route model on its own data)
            single = safety.task_singles(artifact.meta, self.models)
            if self.profiles is None or len(single) == len(self.models):
                wanted = DEFAULT_QUALITY_TARGET if target is None else target
                self._novel_to = safety.choose(wanted, [], single)

    def _init_unplaced(self) -> None:
        """Targets that hold on unseen categories (``shift``): a prompt the category head
        cannot place gets a higher willingness to pay, or with profiles a raised threshold
        (``profile_shift``; quality_target mode only)."""
        artifact = self.artifact
        self._unseen = (
            artifact.shift
            if self.profiles is None and self.wtp is None and self._shift is not None
            else None
        )
        self._category: FoldedHeads | None = None
        if self.profiles and self.wtp is None and artifact.profile_shift and artifact.category:
            self._unseen = artifact.profile_shift
            self._category = FoldedHeads([artifact.category])

    def _indices(self, models: list[str]) -> list[int]:
        return [i for i, m in enumerate(self.models) if m in models]

    def _served_knob(self) -> dict[str, Any]:
        """The decision's note of the served setting (after the do-no-harm check)."""
        out: dict[str, Any] = {}
        if self._served is not None:
            out["served"] = self._served
        if self._best is not None and self._choice is None:
            out["mode"] = f"single model {self.models[self._best]} (do no harm)"
        return out

    def _serve_safely(self, quality_target: float | None, setting: safety.Option | None) -> None:
        """Set ``_log_wtp`` or ``_best`` to the safe setting for the knob (``safety``), and
        ``_choice`` when requests are split between two settings; ``setting`` pins one."""
        artifact = self.artifact
        single = safety.singles(artifact.meta, self.models)
        if setting is not None:
            self._apply(safety.Choice(setting))
            return
        if not single:  # an artifact without single-model figures: the old rule
            reach = max(artifact.calibration.share, default=1.0)
            if self.wtp is None and quality_target is not None and quality_target > reach:
                quality = artifact.meta.get("model_quality", {})
                self._best = max(
                    range(len(self.models)),
                    key=lambda i: (
                        self.models[i] == artifact.best_model,
                        quality.get(self.models[i], 0),
                    ),
                )
            return
        if self.wtp is not None and self._log_wtp is not None:
            learned = safety.options("learned", artifact.calibration)
            choice = safety.for_knob(self._log_wtp, learned, single)
        else:
            target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
            learned = safety.options("learned", artifact.target_calibration)
            choice = safety.choose(target, learned, single, prompts=artifact.meta.get("prompts"))
        if choice is not None:
            self._apply(choice)

    def _serve_profile_safely(
        self, quality_target: float | None, setting: safety.Option | None
    ) -> None:
        """Do no harm for a profile route whose every model the artifact measured: the
        threshold's measured setting, or the single model that beats it out of fold."""
        artifact = self.artifact
        single = safety.singles(artifact.meta, self.models)
        if setting is not None or self.wtp is not None or len(single) != len(self.models):
            return
        target = DEFAULT_QUALITY_TARGET if quality_target is None else quality_target
        profile = safety.options("profile", artifact.profile_target_calibration)
        choice = safety.choose(target, profile, single, prompts=artifact.meta.get("prompts"))
        if choice is not None:
            self._apply(choice)

    def _apply(self, choice: safety.Choice) -> None:
        self.safety_note = choice.note
        self._choice = choice if choice.upper is not None else None
        self._best, log_wtp = self._setting(choice.option)
        if choice.option.kind == "profile":
            self._threshold = choice.option.knob
        self._log_wtp = self._log_wtp if log_wtp is None else log_wtp
        self._served = choice.describe()

    @property
    def served(self) -> str | None:
        """The setting served for the knob after the do-no-harm check (None: as asked)."""
        return self._served

    def _setting(self, option: safety.Option) -> tuple[int | None, float | None]:
        """(pinned model index, log wtp) of a setting (neither for a profile threshold)."""
        if option.kind == "single":
            return self.models.index(option.model), None
        if option.kind == "profile":
            return None, None
        return None, option.knob

    def predict(
        self, text: str, f: Features | None = None, prompt_tokens: int | None = None
    ) -> tuple[list[float], list[float], int]:
        """P(good), predicted cost (USD) per route model, and the prompt's tokens (``f``: the
        prompt's features when already computed; tokens counted here unless the caller has
        them)."""
        p, cost, tokens, _ = self.predict_placed(text, f, prompt_tokens)
        return p, cost, tokens

    def predict_placed(
        self, text: str, f: Features | None = None, prompt_tokens: int | None = None
    ) -> tuple[list[float], list[float], int, float]:
        """``predict`` and the category head's largest output (how surely the prompt is placed
        in a training category; +inf without a category head)."""
        confidence = math.inf
        if self.profiles is None:
            z = self._heads.apply(self.artifact.featurize(text) if f is None else f)
            m = len(self.models)
            lz = self._platt[:, 0] * z[:m] + self._platt[:, 1]
            if self._shift is not None:
                confidence = float(np.max(z[2 * m :]))
                lz = lz + self._shift[int(np.argmax(z[2 * m :]))]
            p = sigmoid(lz).tolist()
            toks = np.maximum(np.expm1(z[m : 2 * m] + self._token_var / 2), 1.0).tolist()
        else:
            if len(text) > LONG_TEXT:  # thousands of buckets: one array product
                feats = self.artifact.featurize(text) if f is None else f
                easiness, log_tokens = self._pair.apply_features(feats)
            else:
                sparse = sparse_features(text) if f is None else (f.idx.tolist(), f.val.tolist())
                easiness, log_tokens = self._pair.apply(*sparse)
            shift = easiness - self._mean_easiness
            if self._category is not None:
                feats = self.artifact.featurize(text) if f is None else f
                confidence = float(np.max(self._category.apply(feats)))
            p = [1.0 / (1.0 + math.exp(-(q + shift))) for q in self._profile_logit]
            toks = [max(math.expm1(log_tokens + self._token_shift), 1.0)] * len(self.models)
        if prompt_tokens is None:
            prompt_tokens = count_tokens(text)
        cost = [
            prompt_tokens * pin + t * pout
            for pin, pout, t in zip(self._pin, self._pout, toks, strict=True)
        ]
        return p, cost, prompt_tokens, confidence

    def degraded_knob(self, pressure: float) -> tuple[float | None, float]:
        """(log willingness to pay or None, per-prompt threshold) under budget ``pressure``:
        the quality target lowered (``degraded_quality_target``) or the willingness to pay
        shrunk (``degraded_wtp``), so cheaper models win as a budget runs out."""
        if pressure <= 0.0:
            return self._log_wtp, self._threshold
        if self.wtp is not None:
            return math.log10(degraded_wtp(self.wtp, pressure)), self._threshold
        target = DEFAULT_QUALITY_TARGET if self.quality_target is None else self.quality_target
        lowered = degraded_quality_target(target, pressure)
        if self.profiles is None:
            return self.artifact.calibration.knob_for(lowered), lowered
        cal = self.artifact.profile_target_calibration
        return None, cal.knob_for(lowered) if cal is not None else lowered

    def choose(
        self,
        p: list[float],
        cost: list[float],
        eligible: list[bool],
        pressure: float = 0.0,
        setting: safety.Option | None = None,
        novel: bool = False,
        boost: float = 0.0,
    ) -> int:
        best = self._best
        pinned_wtp = pinned_threshold = None
        if setting is not None:
            best, pinned_wtp = self._setting(setting)
            pinned_threshold = setting.knob if setting.kind == "profile" else None
        peers = self._novel_peers if novel else self._peers
        if best is not None and pressure <= 0.0 and best in peers:
            best = self._cheapest_peer(peers, best, cost, eligible)
        if (
            best is not None
            and pressure <= 0.0
            and eligible[best]
            and (self.max_cost is None or cost[best] <= self.max_cost)
        ):
            return best
        log_wtp, threshold = self.degraded_knob(pressure)
        if pinned_wtp is not None and pressure <= 0.0:
            log_wtp = pinned_wtp
        if pinned_threshold is not None and pressure <= 0.0:
            threshold = pinned_threshold
        if log_wtp is not None and pressure <= 0.0:
            log_wtp += boost
        elif boost and pressure <= 0.0:  # profiles: the unplaced prompt's raised threshold
            threshold = raise_threshold(threshold, boost)
        allowed = eligible
        if self.max_cost is not None:
            max_cost = self.max_cost
            allowed = [ok and c <= max_cost for ok, c in zip(eligible, cost, strict=True)]
            if not any(allowed):  # every eligible model costs too much: the cheapest one
                cheapest = _argmin(
                    [c if ok else math.inf for ok, c in zip(eligible, cost, strict=True)]
                )
                allowed = [i == cheapest for i in range(len(cost))]
        if log_wtp is not None:
            return pick(np.array(p), np.array(cost), log_wtp, np.array(allowed))
        top = max(q if ok else 0.0 for q, ok in zip(p, allowed, strict=True))
        return _argmin(
            [
                c if ok and q >= threshold * top else math.inf
                for q, c, ok in zip(p, cost, allowed, strict=True)
            ]
        )

    @staticmethod
    def _cheapest_peer(peers: list[int], best: int, cost: list[float], eligible: list[bool]) -> int:
        """The eligible one of ``peers`` (``best`` among them) predicted cheapest here."""
        ok = [i for i in peers if eligible[i]]
        return min(ok, key=cost.__getitem__) if ok else best

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "learned"
        if self.portfolio is not None:
            screened = screen(self.models, self.portfolio, request, needs)
            decision["screened"] = [c.as_dict() for c in screened if not c.eligible]
            eligible = [c.eligible for c in screened]
        else:
            eligible = [True] * len(self.models)
        if not any(eligible):
            if self.portfolio is not None:
                raise no_candidate_error(self.name, screened)
            raise GatewayError(
                "invalid_request",
                f"No model of {self.name!r} can serve this request.",
                param="model",
                code="no_capable_model",
            )
        facts = request.facts
        check = self.profiles is None or self._novel_to is not None or self._category is not None
        f = self.artifact.featurize(facts.text) if check else None
        p_global, cost, prompt_tokens, placed = self.predict_placed(
            facts.text, f, facts.text_tokens
        )
        boost = self._unseen.boost_for(placed) if self._unseen is not None else 0.0
        if boost:
            kind = "lift" if self.profiles else "boost"
            decision["unplaced"] = {"confidence": round(placed, 4), kind: boost}
        p = personalise(p_global, needs.personal, decision)
        pressure = needs.budget_pressure
        setting = None
        if self._choice is not None:
            setting = self._choice.pick(safety.request_draw(facts.text))
            decision["setting"] = setting.label()
        novel = self.artifact.is_novel(f) if f is not None and self._novel_to else None
        if novel is not None and self._novel_to is not None:
            setting = self._novel_to.pick(safety.request_draw(facts.text))
            decision["out_of_distribution"] = {**novel, "served": setting.model}
        choice = self.choose(p, cost, eligible, pressure, setting, novel is not None, boost)
        if pressure > 0.0:
            log_wtp, target = self.degraded_knob(pressure)
            decision["budget_degraded"] = {
                "pressure": round(pressure, 3),
                "quality_target": round(target, 4),
                "log_wtp": None if log_wtp is None else round(log_wtp, 3),
                "undegraded_choice": self.models[self.choose(p, cost, eligible)],
            }
        decision["knob"] = dict(self._knob)
        if self.safety_note:
            decision["do_no_harm"] = self.safety_note
        decision["prompt_tokens"] = prompt_tokens
        decision["candidates"] = [
            {"model": m, "p_good": round(p_global[i], 4), "cost": cost[i]}
            for i, m in enumerate(self.models)
            if eligible[i]
        ]
        decision["chosen"] = self.models[choice]
        last: Outcome = yield Attempt(self.models[choice])
        if last.ok:
            return last
        # the chosen model failed: the other eligible ones, by value
        wtp = 10.0 ** (self._log_wtp if self._log_wtp is not None else 0.0)
        value = [q * wtp - c for q, c in zip(p, cost, strict=True)]
        for i in sorted(range(len(value)), key=lambda i: -value[i]):
            if i == choice or not eligible[i]:
                continue
            last = yield Attempt(self.models[i])
            if last.ok:
                decision["fallback_to"] = self.models[i]
                return last
        return last
