"""``CascadeStrategy``: try cheap models first, accept only a verified answer, else escalate.

The policy (no I/O; the engine makes every call and records each one in the ledger):

1. Call the cheap *voters* in order. Each answer goes through the response verifiers (refusal /
   empty, JSON with an extractable answer, log-probability confidence when present); an answer
   failing them does not vote. Stop calling voters as soon as ``need`` of them agree.
2. Gate: with a trained artifact, a logistic model estimates P(the best-supported answer is
   right) from the votes and each voter's predicted P(good) for this prompt; accept when it
   reaches the threshold (``quality_target`` maps to one through the artifact's held-back
   calibration). Without an artifact: accept when ``need`` voters agree. Optionally an LLM
   ``judge`` scores a best-supported answer that did not pass, before escalating.
3. Escalate: call the *strong* tier in order; its first verified answer wins. If none verifies,
   return the best-supported answer seen, else the last outcome.

Streaming: verification needs the whole answer and the engine fails over only before the first
byte, so a streamed request skips the voters and goes straight to the strong tier (recorded as
``"stream": "sent to strong tier"``). Latency: an accepted answer costs the voters' calls in
sequence (typically 2 small-model calls); an escalated one adds the strong call on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from modelmix.budgets.degrade import degraded_wtp
from modelmix.errors import GatewayError
from modelmix.portfolio import ModelEntry
from modelmix.routing.candidates import no_candidate_error, screen
from modelmix.routing.learned import safety
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.model import sigmoid
from modelmix.routing.learned.policy import agreed, gate_features
from modelmix.routing.learned.staged import StagedGate, answer_key
from modelmix.routing.learned.strategy import LearnedStrategy, portfolio_prices
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Outcome, Plan
from modelmix.routing.verifiers import (
    Verdict,
    check_response,
    judge_request,
    judge_score,
    parse_json,
)
from modelmix.types import ChatRequest, ChatResponse


class CascadeStrategy:
    def __init__(
        self,
        name: str,
        voters: Sequence[str],
        strong: Sequence[str],
        portfolio: Mapping[str, ModelEntry] | None = None,
        artifact: RouterArtifact | None = None,
        need: int = 2,
        quality_target: float | None = None,
        gate_threshold: float | None = None,
        verifiers: Sequence[str] = ("refusal", "answer"),
        min_logprob: float | None = None,
        judge: str | None = None,
        judge_threshold: float = 0.8,
    ) -> None:
        self.name = name
        self.voters = list(voters)
        self.strong = list(strong)
        self.portfolio = portfolio
        self.need = need
        self.verifiers = tuple(verifiers)
        self.min_logprob = min_logprob
        self.judge = judge
        self.judge_threshold = judge_threshold
        self.artifact = artifact
        self.gate_threshold: float | None = None
        self._gate_w: np.ndarray | None = None
        if artifact is not None and artifact.gate is not None:
            self._gate_w = np.asarray(artifact.gate.weights)
            if gate_threshold is not None:
                self.gate_threshold = gate_threshold
            elif quality_target is not None:
                self.gate_threshold = artifact.gate.calibration.knob_for(quality_target)
            else:
                self.gate_threshold = 0.5
            unknown = [m for m in self.voters if m not in artifact.models]
            if unknown:
                raise ValueError(f"route {name!r}: the artifact does not know {unknown}")
            self._vidx = [artifact.models.index(m) for m in self.voters]
        self.quality_target = quality_target

    def _eligible(self, chain: list[str], request: ChatRequest, needs: Needs) -> list[str]:
        if self.portfolio is None:
            return chain
        return [c.model for c in screen(chain, self.portfolio, request, needs) if c.eligible]

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "cascade"
        voters = self._eligible(self.voters, request, needs)
        strong = self._eligible(self.strong, request, needs)
        if not voters and not strong:
            if self.portfolio is not None:  # say why, model by model
                chain = [*self.voters, *self.strong]
                raise no_candidate_error(self.name, screen(chain, self.portfolio, request, needs))
            raise GatewayError(
                "invalid_request",
                f"No model of {self.name!r} can serve this request.",
                param="model",
                code="no_capable_model",
            )
        decision["knob"] = {
            "quality_target": self.quality_target,
            "gate_threshold": self.gate_threshold,
            "need": self.need,
        }
        steps: list[dict[str, Any]] = []
        decision["steps"] = steps
        if needs.stream:
            decision["stream"] = "sent to strong tier"
            strong = strong or voters[:1]
            voters = []
        last: Outcome | None = None
        outcomes: list[Outcome] = []
        answers: list[str | None] = []
        p_voters: list[float] = []
        p_all = None
        if voters and self.artifact is not None and self._gate_w is not None:
            p_all, _ = self.artifact.predict(self.artifact.featurize(request.facts.text))
        for model in voters:
            last = yield Attempt(model)
            verdict = check_response(last.response, self.verifiers, min_logprob=self.min_logprob)
            ok = last.ok and verdict.ok
            steps.append(
                {
                    "model": model,
                    "tier": "voter",
                    "ok": ok,
                    "answer": verdict.answer if ok else None,
                }
                | ({"reason": verdict.reason} if not ok and last.ok else {})
            )
            outcomes.append(last)
            answers.append(verdict.answer if ok else None)
            if p_all is not None:
                p_voters.append(float(p_all[self._vidx[self.voters.index(model)]]))
            else:
                p_voters.append(0.5)
            if agreed(answers, self.need):
                break
        if answers:
            feats, top, who = gate_features(answers, p_voters)
            if self._gate_w is not None and self.gate_threshold is not None:
                w = self._gate_w
                prob = float(sigmoid(np.asarray(feats) @ w[:-1] + w[-1]))
                accept = top is not None and prob >= self.gate_threshold
                decision["gate"] = {"p_correct": round(prob, 4), "threshold": self.gate_threshold}
            else:
                accept = top is not None and agreed(answers, self.need)
                decision["gate"] = {"agreement": accept}
            if not accept and top is not None and needs.budget_pressure >= 1.0:
                # a budget is at its limit: keep the best voter answer, do not pay for more
                decision["budget_degraded"] = {"pressure": 1.0, "skipped": "escalation"}
                accept = True
            if not accept and top is not None and self.judge is not None:
                shown = outcomes[who].response
                content = shown.content if shown is not None else ""
                verdict_out = yield Attempt(
                    self.judge, request=judge_request(request, content or "", self.judge)
                )
                score = judge_score(verdict_out.response) if verdict_out.ok else None
                steps.append({"model": self.judge, "tier": "judge", "score": score})
                accept = score is not None and score >= self.judge_threshold
            if accept:
                decision["chosen"] = voters[who]
                decision["escalated"] = False
                return outcomes[who]
        decision["escalated"] = bool(voters)
        for model in strong:
            out = yield Attempt(model)
            strong_ok = needs.stream or check_response(out.response, ("refusal",)).ok
            ok = out.ok and strong_ok
            steps.append({"model": model, "tier": "strong", "ok": ok})
            last = out
            if ok:
                decision["chosen"] = model
                return out
        # Nothing verified: the best-supported voter answer, if any.
        if answers and any(a is not None for a in answers):
            _, _, who = gate_features(answers, p_voters)
            decision["chosen"] = voters[who]
            return outcomes[who]
        return last


class StagedCascadeStrategy:
    """A multi-stage cascade with a learned gate (``StagedGate``), one knob spanning cheap to
    strong: ``lam`` (price of quality, USD per unit of quality), or ``quality_target`` mapped to
    ``lam`` through the artifact's held-back calibration.

    Stages are called in order; every stage's answers go through the response verifiers. After
    each stage the gate picks the most probably right answer among all answers so far and calls
    the next stages only if their expected gain in quality, priced at ``lam``, exceeds their
    predicted cost for this prompt. A stage with no usable answer at all escalates. The
    returned outcome is the last called model giving the chosen answer.

    Streaming cannot verify before the first byte, so a streamed request goes to one model (the
    artifact's best model when the route has it, else the last stage's first model).
    """

    def __init__(
        self,
        name: str,
        artifact: RouterArtifact,
        portfolio: Mapping[str, ModelEntry] | None = None,
        quality_target: float | None = None,
        lam: float | None = None,
        verifiers: Sequence[str] = ("refusal", "answer"),
        min_logprob: float | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if artifact.staged is None:
            raise ValueError(f"route {name!r}: the artifact has no staged cascade gate")
        self.name = name
        self.artifact = artifact
        self.gate = artifact.staged
        self.portfolio = portfolio
        self.stages = [list(s) for s in self.gate.stages]
        self.quality_target = quality_target
        self.verifiers = tuple(verifiers)
        self.min_logprob = min_logprob
        if lam is not None:
            self.log_lam = math.log10(max(lam, 1e-12))
        else:
            target = 0.95 if quality_target is None else quality_target
            self.log_lam = self.gate.calibration.knob_for(target)
        self.lam = 10.0**self.log_lam
        models = self.gate.models
        unknown = [m for m in models if m not in artifact.models]
        if unknown:
            raise ValueError(f"route {name!r}: the artifact does not know {unknown}")
        merged = {**artifact.prices, **portfolio_prices(portfolio, models), **(prices or {})}
        self._price = {m: merged[m] for m in models}
        self._idx = {m: artifact.models.index(m) for m in models}
        #: Do no harm: when a cheaper safe setting than any of the cascade's keeps the target
        #: out of fold (one learned call, or one model), or the stages cannot verify answers
        #: on this traffic, the route makes that one call instead (``safety``).
        self.single: LearnedStrategy | None = None
        self.safety_note: str | None = None
        #: Requests split between two settings (one may be a single call): ``safety.Choice``.
        self._choice: safety.Choice | None = None
        self._delegates: dict[safety.Option, LearnedStrategy] = {}
        known = [m for m in artifact.models if portfolio is None or m in portfolio]

        def delegate(option: safety.Option | None) -> LearnedStrategy:
            return LearnedStrategy(
                name,
                known,
                artifact,
                portfolio,
                quality_target=quality_target,
                prices=prices,
                setting=option,
            )

        note = self._safe_setting(lam, quality_target)
        #: A prompt unlike the training prompts: the single models that keep the target by
        #: themselves (the learned strategy's own rule for such prompts; target mode only).
        self._novel: LearnedStrategy | None = None
        #: With the gate's shares per task: the cheapest of the gate and the single models
        #: that keeps the target on a new task (their shares averaged over the training tasks).
        self._novel_choice: safety.Choice | None = None
        if lam is None and safety.singles(artifact.meta) and artifact.checks_novelty:
            task_cal = self.gate.task_calibration
            if task_cal is None:
                self._novel = delegate(None)
            else:
                target = 0.95 if quality_target is None else quality_target
                opts = safety.options("cascade", task_cal)
                self._novel_choice = safety.choose(target, opts, safety.task_singles(artifact.meta))
                self._novel_delegates(delegate)
        self._delegate_to(delegate, note)

    def _novel_delegates(self, delegate: Callable[[safety.Option | None], LearnedStrategy]) -> None:
        choice = self._novel_choice
        if choice is not None:
            for option in (choice.option, choice.upper):
                if option is not None and option.kind != "cascade":
                    self._delegates[option] = delegate(option)

    def _delegate_to(
        self, delegate: Callable[[safety.Option | None], LearnedStrategy], note: str | None
    ) -> None:
        """The one-call strategies for the settings that are not the cascade's."""
        if self._choice is not None:
            for option in (self._choice.option, self._choice.upper):
                if option is not None and option.kind != "cascade":
                    self._delegates[option] = delegate(option)
        elif note is not None:
            self.single = delegate(None)
            self.safety_note = note

    def _safe_setting(self, lam: float | None, quality_target: float | None) -> str | None:
        """Set ``log_lam`` (and ``_choice`` for a split) to the safe setting; a note when the
        cascade is not served."""
        artifact, cal = self.artifact, self.gate.calibration
        single = safety.singles(artifact.meta)
        if not single:  # an artifact without single-model figures: the old floor rule
            floor = min(cal.share, default=0.0)
            if lam is None and quality_target is not None and quality_target < floor:
                return "target under the cheapest stage's quality: one call"
            return None
        verifiable = float(artifact.meta.get("staged_verifiable", 1.0))
        if verifiable < safety.MIN_VERIFIABLE:
            return (
                f"the stages cannot verify answers on this traffic (a comparable answer on "
                f"{verifiable:.0%} of training prompts): cascade not offered, one learned call"
            )
        mine = safety.options("cascade", cal)
        if lam is not None:
            choice = safety.for_knob(self.log_lam, mine, single)
        else:
            target = 0.95 if quality_target is None else quality_target
            learned = safety.options("learned", artifact.target_calibration)
            choice = safety.choose(
                target, [*mine, *learned], single, prompts=artifact.meta.get("prompts")
            )
        if choice is None:
            return None
        if choice.upper is not None:
            self._choice = choice
            self.safety_note = choice.note
        if choice.option.kind == "cascade":
            self.log_lam = choice.option.knob
            self.lam = 10.0**self.log_lam
            return None
        return choice.note or f"cheaper than any safe cascade setting: {choice.describe()}"

    @property
    def served(self) -> str:
        """What the route serves after the do-no-harm check."""
        if self.single is not None:
            return f"one learned call ({self.single.served or 'as asked'})"
        if self._choice is not None:
            return self._choice.describe()
        return f"cascade (log10 lam {self.log_lam:.2f})"

    def _eligible(self, request: ChatRequest, needs: Needs) -> set[str]:
        models = self.gate.models
        if self.portfolio is None:
            return set(models)
        return {c.model for c in screen(models, self.portfolio, request, needs) if c.eligible}

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        if self.single is not None:
            decision["do_no_harm"] = self.safety_note
            outcome = yield from self.single.plan(request, needs, decision)
            decision["strategy"] = "cascade"
            return outcome
        f = self.artifact.featurize(request.facts.text)
        novel = self.artifact.is_novel(f) if self._novel or self._novel_choice else None
        if novel is not None and self._novel is not None:
            decision["out_of_distribution"] = dict(novel)
            outcome = yield from self._novel.plan(request, needs, decision)
            decision["strategy"] = "cascade"
            return outcome
        lam_now = self.lam
        choice = self._choice
        if novel is not None and self._novel_choice is not None:
            decision["out_of_distribution"] = dict(novel)
            choice = self._novel_choice
        if choice is not None:
            setting = choice.pick(safety.request_draw(request.facts.text))
            decision["setting"] = setting.label()
            if setting.kind != "cascade":
                decision["do_no_harm"] = f"split: {choice.describe()}"
                outcome = yield from self._delegates[setting].plan(request, needs, decision)
                decision["strategy"] = "cascade"
                return outcome
            lam_now = 10.0**setting.knob
        decision["strategy"] = "cascade"
        eligible = self._eligible(request, needs)
        if not eligible:
            if self.portfolio is not None:  # say why, model by model
                screened = screen(self.gate.models, self.portfolio, request, needs)
                raise no_candidate_error(self.name, screened)
            raise GatewayError(
                "invalid_request",
                f"No model of {self.name!r} can serve this request.",
                param="model",
                code="no_capable_model",
            )
        decision["knob"] = {
            "quality_target": self.quality_target,
            "lam": float(f"{lam_now:.4g}"),
        }
        steps: list[dict[str, Any]] = []
        decision["steps"] = steps
        if needs.stream:
            best = self.artifact.best_model
            order = [best] if best in eligible else []
            order += [m for s in reversed(self.stages) for m in s if m in eligible]
            decision["stream"] = "sent to one model (no verification before the first byte)"
            decision["escalated"] = False
            last_out: Outcome | None = None
            for model in dict.fromkeys(order):
                last_out = yield Attempt(model)
                steps.append({"model": model, "tier": "stream", "ok": last_out.ok})
                if last_out.ok:
                    decision["chosen"] = model
                    return last_out
            return last_out
        lam = lam_now
        if needs.budget_pressure > 0.0:
            lam = degraded_wtp(lam_now, needs.budget_pressure)
            decision["budget_degraded"] = {
                "pressure": round(needs.budget_pressure, 3),
                "lam": float(f"{lam:.4g}"),
            }
        _p, toks = self.artifact.predict(f)
        cat = self.artifact.category_of(f)
        prompt_tokens = request.facts.text_tokens
        decision["category"] = cat
        decision["prompt_tokens"] = prompt_tokens
        called: list[str] = []
        answers: list[str | None] = []
        outcomes: list[Outcome | None] = []
        first_tokens: list[float] = []
        last: Outcome | None = None
        top: str | None = None
        mask = 0
        gate, stages = self.gate, self.stages
        k = 0
        while k < len(stages):
            for model in stages[k]:
                called.append(model)
                if model not in eligible:
                    answers.append(None)
                    outcomes.append(None)
                    continue
                last = yield Attempt(model)
                verdict = check_response(
                    last.response, self.verifiers, min_logprob=self.min_logprob
                )
                answer = staged_answer(last.response, verdict) if last.ok else None
                ok = answer is not None
                answers.append(answer)
                outcomes.append(last if ok else None)
                if k == 0 and ok and last.response is not None:
                    usage = last.response.usage
                    if usage is not None:
                        first_tokens.append(float(usage.completion_tokens))
            top, p, mask = gate.current(cat, k, answers)
            step: dict[str, Any] = {
                "stage": k,
                "models": list(stages[k]),
                "answers": answers[len(answers) - len(stages[k]) :],
                "p_answer": round(p, 4),
            }
            steps.append(step)
            if k == len(stages) - 1:
                break
            if top is None:
                step["next"] = "no usable answer: escalate"
                k += 1
                continue
            costs = (prompt_tokens, toks, first_tokens, eligible)
            plan = self._next(gate, k, cat, mask, p, costs, lam, step)
            if plan is None:
                break
            gate = plan
            stages = [list(x) for x in plan.stages]
            k += 1
        decision["escalated"] = len(steps) > 1
        if top is not None:
            who = mask.bit_length() - 1
            chosen = outcomes[who]
            if chosen is not None:
                decision["chosen"] = called[who]
                decision["answer"] = top
                return chosen
        for model, out in zip(reversed(called), reversed(outcomes), strict=True):
            if out is not None:
                decision["chosen"] = model
                return out
        return last

    def _next(
        self,
        gate: StagedGate,
        k: int,
        cat: str,
        mask: int,
        p: float,
        costs: tuple[int, np.ndarray, list[float], set[str]],
        lam: float,
        step: dict[str, Any],
    ) -> StagedGate | None:
        """After stage ``k``: the plan (gate) to go on with, or None to stop (logged in
        ``step``). After the first stage the gate chooses between its plans
        (``StagedGate.first_step``); later, the chosen plan's gate decides (``go_on``)."""
        if k == 0:
            plans = gate.plans
            later_by = [self._later(g, g.stages[1:], *costs) for g in plans]
            pick, gain = gate.first_step(cat, mask, p, later_by, lam)
            later = later_by[pick or 0]
            nxt = None if pick is None else plans[pick]
            if pick:
                step["next"] = f"plan without stage 1: {plans[pick].stages[1]}"
        else:
            later = self._later(gate, gate.stages[k + 1 :], *costs)
            go, gain = gate.go_on(cat, k, mask, p, later, lam)
            nxt = gate if go else None
        step["predicted_cost_later"] = [float(f"{c:.3g}") for c in later]
        step["net_gain"] = float(f"{gain:.3g}")
        return nxt

    def _later(
        self,
        gate: StagedGate,
        stages: Sequence[Sequence[str]],
        prompt_tokens: int,
        toks: np.ndarray,
        first: list[float],
        eligible: set[str],
    ) -> list[float]:
        """Predicted cost of each of ``stages`` (the eligible models' calls) for this prompt."""
        return [
            sum(
                self._cost(gate, m, prompt_tokens, float(toks[self._idx[m]]), first)
                for m in s
                if m in eligible
            )
            for s in stages
        ]

    def _cost(
        self, gate: StagedGate, model: str, prompt_tokens: int, predicted: float, first: list[float]
    ) -> float:
        pin, pout = self._price[model]
        return prompt_tokens * pin + gate.later_tokens(model, predicted, first) * pout


def staged_answer(response: ChatResponse | None, verdict: Verdict) -> str | None:
    """The answer a staged cascade compares (``answer_key``), or None when it has none.

    Like the verifiers, except that an explicit empty or whitespace-only ``answer`` string in
    the JSON is a real answer (a program printing nothing): the verifier's normalisation would
    drop it, the gate would escalate, and even the strong model's right answer would be lost."""
    if verdict.ok:
        return verdict.answer
    if verdict.reason != "no extractable answer" or response is None:
        return None
    obj = parse_json(response.content)
    raw = obj.get("answer") if obj is not None else None
    return answer_key(raw) if isinstance(raw, str) and not raw.strip() else None
