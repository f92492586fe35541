"""Scorers: how good one answer is, in [0, 1], with a detail for the results table.

All are pure functions of the answer and the item, except the judge, which asks a model
through the caller's ``JudgeCall`` (the runner passes one that goes through the gateway's
engine, so judge calls are routed, retried and recorded like any other).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema

from modelmix.evals import judge
from modelmix.evals.dataset import (
    EvalItem,
    ExactScorer,
    JsonSchemaScorer,
    JudgeScorer,
    NumericScorer,
    PythonScorer,
    RegexScorer,
)
from modelmix.routing.verifiers import parse_json

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
#: A judge call: (judge model, prompt) -> the judge's reply text (None: the call failed).
JudgeCall = Callable[[str, str], Awaitable[str | None]]


@dataclass(slots=True)
class Score:
    value: float
    scorer: str
    detail: dict[str, Any] = field(default_factory=dict)


class ScorerError(ValueError):
    """A scorer that cannot run (bad regex, unknown function, no judge model)."""


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def extract(answer: str, how: str) -> str | None:
    """The part of ``answer`` a scorer compares (see ``dataset.Extract``)."""
    if how == "full":
        return answer
    if how == "last_line":
        lines = [line for line in answer.strip().splitlines() if line.strip()]
        return lines[-1] if lines else None
    if how == "last_number":
        value = last_number(answer)
        return None if value is None else repr(value)
    if how.startswith("json:"):
        obj = parse_json(answer)
        if obj is None or how[5:] not in obj:
            return None
        return str(obj[how[5:]])
    if how.startswith("re:"):
        m = _compiled(how[3:]).search(answer)
        if m is None:
            return None
        return m.group(1) if m.groups() else m.group(0)
    raise ScorerError(f"unknown extract {how!r} (full, last_line, last_number, json:F, re:P)")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ScorerError(f"bad regex {pattern!r}: {exc}") from None


def _normalise(text: str, case_sensitive: bool) -> str:
    text = " ".join(text.strip().split())
    return text if case_sensitive else text.lower()


def score_exact(spec: ExactScorer, answer: str, item: EvalItem) -> Score:
    got = extract(answer, spec.extract)
    want = "" if item.reference is None else str(item.reference)
    ok = got is not None and _normalise(got, spec.case_sensitive) == _normalise(
        want, spec.case_sensitive
    )
    return Score(float(ok), "exact", {"extracted": got})


def score_regex(spec: RegexScorer, answer: str, item: EvalItem) -> Score:
    found = _compiled(spec.pattern).search(answer) is not None
    return Score(float(found != spec.negate), "regex", {"found": found})


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    import orjson

    schema = orjson.loads(schema_json)
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ScorerError(f"invalid JSON schema: {exc.message}") from None
    return cls(schema)


def score_json_schema(spec: JsonSchemaScorer, answer: str, item: EvalItem) -> Score:
    import orjson

    obj = parse_json(answer)
    if obj is None:
        return Score(0.0, "json_schema", {"error": "no JSON object in the answer"})
    validator = _validator(orjson.dumps(spec.schema_, option=orjson.OPT_SORT_KEYS).decode())
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        return Score(0.0, "json_schema", {"error": f"{where}: {first.message}"[:300]})
    return Score(1.0, "json_schema", {})


def score_numeric(spec: NumericScorer, answer: str, item: EvalItem) -> Score:
    try:
        want = float(item.reference)
    except (TypeError, ValueError):
        raise ScorerError(f"item {item.id}: numeric scorer needs a numeric reference") from None
    got_text = extract(answer, spec.extract)
    got = last_number(got_text) if got_text is not None else None
    if got is None or not math.isfinite(got):
        return Score(0.0, "numeric", {"extracted": None})
    ok = abs(got - want) <= max(spec.tolerance, spec.rel_tolerance * abs(want))
    return Score(float(ok), "numeric", {"extracted": got})


@lru_cache(maxsize=64)
def _function(path: str) -> Callable[..., Any]:
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScorerError(f"cannot import {module_name!r} for scorer {path!r}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ScorerError(f"{path!r}: {module_name} has no function {name!r}")
    return fn  # type: ignore[no-any-return]


def score_python(spec: PythonScorer, answer: str, item: EvalItem) -> Score:
    result = _function(spec.function)(answer, item)
    detail: dict[str, Any] = {}
    if isinstance(result, tuple):
        result, detail = result[0], dict(result[1])
    if isinstance(result, bool):
        value = float(result)
    elif isinstance(result, int | float) and math.isfinite(result):
        value = min(max(float(result), 0.0), 1.0)
    else:
        raise ScorerError(f"{spec.function} returned {result!r}; expected a bool or a number")
    return Score(value, "python", detail)


async def score_judge(
    spec: JudgeScorer,
    answer: str,
    item: EvalItem,
    call: JudgeCall,
    default_model: str | None,
) -> Score:
    model = spec.model or default_model
    if model is None:
        raise ScorerError(
            f"item {item.id}: the judge scorer needs a judge model (scorer.model or --judge)"
        )
    prompt = judge.single_prompt(item.question(), answer, item.reference, spec.rubric)
    reply = await call(model, prompt)
    value = judge.parse_single(reply)
    if value is None:
        return Score(0.0, "judge", {"judge": model, "error": "unusable verdict", "reply": reply})
    return Score(value, "judge", {"judge": model})


async def score(
    item: EvalItem, answer: str, call: JudgeCall, default_judge: str | None = None
) -> Score:
    """Score ``answer`` to ``item`` with the item's scorer."""
    spec = item.scorer_spec()
    if isinstance(spec, JudgeScorer):
        return await score_judge(spec, answer, item, call, default_judge)
    if isinstance(spec, ExactScorer):
        return score_exact(spec, answer, item)
    if isinstance(spec, RegexScorer):
        return score_regex(spec, answer, item)
    if isinstance(spec, JsonSchemaScorer):
        return score_json_schema(spec, answer, item)
    if isinstance(spec, NumericScorer):
        return score_numeric(spec, answer, item)
    return score_python(spec, answer, item)
