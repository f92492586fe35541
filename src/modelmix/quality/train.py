"""Training data for the learned router from the ledger: prompts with every model's outcome.

The router trains on prompts where each of its models has a known quality (the format of
``routing/learned/data.py``). The ledger has them from two sources, merged by prompt text:

* eval runs: every model of the run answered every item (``eval_results``);
* live traffic: the answering model's label (feedback or judge) and, where shadow traffic
  mirrored a request, the candidate's judged answer.

A prompt missing any model's outcome is left out (never imputed: the router would learn the
imputation). ``ledger_rows`` says how many were complete, for the caller to decide if that is
enough.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelmix.evals.scorers import last_number
from modelmix.evals.store import EvalStore
from modelmix.quality.store import QualityStore
from modelmix.quality.traffic import load_traffic


@dataclass(slots=True)
class _Outcome:
    scores: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answer: str | None = None


@dataclass(slots=True)
class TrainingRows:
    rows: list[dict[str, Any]]
    prompts_seen: int
    #: prompts with a known outcome per model
    per_model: dict[str, int]
    sources: dict[str, int]


def _final_answer(text: str | None) -> str | None:
    """The answer in canonical form (its last number), for the cascade's agreement tables."""
    if not text:
        return None
    value = last_number(text)
    if value is None:
        return None
    return str(int(value)) if value.is_integer() else str(value)


def ledger_rows(
    store: QualityStore,
    evals: EvalStore,
    models: Sequence[str],
    *,
    since: float = 0.0,
    use_evals: bool = True,
    use_traffic: bool = True,
) -> TrainingRows:
    prompts: dict[str, dict[str, _Outcome]] = defaultdict(dict)
    categories: dict[str, str] = {}
    sources: dict[str, int] = defaultdict(int)
    wanted = set(models)

    def add(
        prompt: str, category: str, model: str, score: float, pt: int, ct: int, ans: str | None
    ) -> None:
        if model not in wanted:
            return
        outcome = prompts[prompt].setdefault(model, _Outcome())
        outcome.scores.append(score)
        outcome.prompt_tokens = pt
        outcome.completion_tokens = ct
        outcome.answer = _final_answer(ans) if ans is not None else outcome.answer
        categories.setdefault(prompt, category)

    if use_evals:
        for r in evals.results_since(["eval"], since, models):
            if r.prompt is None or r.error is not None:
                continue
            add(
                r.prompt,
                r.task,
                r.model,
                r.score,
                r.prompt_tokens or 0,
                r.completion_tokens or 0,
                r.answer,
            )
            sources["eval results"] += 1
    if use_traffic:
        for req in load_traffic(store, since):
            prompt = req.prompt
            for model, q in req.quality.items():
                add(
                    prompt,
                    req.route or req.requested_model,
                    model,
                    q,
                    req.prompt_tokens,
                    req.completion_tokens.get(model, 0),
                    req.answers.get(model),
                )
                sources["live labels" if model == req.served else "shadow labels"] += 1
    per_model = {m: sum(1 for o in prompts.values() if m in o) for m in models}
    rows = []
    for i, (prompt, outcomes) in enumerate(sorted(prompts.items())):
        if not all(m in outcomes for m in models):
            continue
        rows.append(
            {
                "id": f"ledger-{i}",
                "category": categories.get(prompt, ""),
                "prompt": prompt,
                "outcomes": {
                    m: {
                        "score": sum(outcomes[m].scores) / len(outcomes[m].scores),
                        "prompt_tokens": outcomes[m].prompt_tokens,
                        "completion_tokens": outcomes[m].completion_tokens,
                        "answer": outcomes[m].answer,
                    }
                    for m in models
                },
            }
        )
    return TrainingRows(rows, len(prompts), per_model, dict(sources))
