"""Verifiers: pure checks of an answer a cascade has received (no I/O).

* format: the content parses as JSON (bare or in a fenced block) and has the required fields;
  the final answer can be extracted (``extract_answer``);
* refusal / empty detection;
* agreement of several models' final answers (``agreement``);
* log-probability confidence, when the upstream returned ``logprobs``;
* an LLM judge: ``judge_request`` builds the request a cascade sends to a judge model (its
  policy yields it as an ``Attempt``), ``judge_score`` reads the judge's verdict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from modelmix.types import ChatRequest, ChatResponse

_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_ANSWER_FIELD = re.compile(r'"answer"\s*:\s*("(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null)')
_REFUSAL = re.compile(
    # an optional leading tag ("[simulated sim-small] ...") does not hide a refusal
    r"^\s*(?:\[[^\]\n]{1,80}\]\s*)?"
    r"(i'?m sorry|i am sorry|i apologi[sz]e|sorry, but|i can(?:'|no)t (?:help|assist|"
    r"provide|comply)|i am unable to|i'm unable to|as an ai\b)",
    re.IGNORECASE,
)

#: Names usable in a cascade's ``verifiers`` list.
KNOWN_VERIFIERS = ("json", "answer", "refusal", "logprob")


def parse_json(content: str | None) -> dict[str, Any] | None:
    """The JSON object in ``content`` (bare, fenced, or the outermost ``{...}``), else None."""
    if not content:
        return None
    candidates = [content.strip()]
    candidates += _FENCED.findall(content)
    start, end = content.find("{"), content.rfind("}")
    if 0 <= start < end:
        candidates.append(content[start : end + 1])
    for text in candidates:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def normalise_answer(value: object) -> str | None:
    """A comparable form of a final answer: text, trimmed, ``$`` and trailing dot removed."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    text = text.strip().strip("$").strip()
    if text.endswith(".") and text[:-1].replace(",", "").replace("-", "").isdigit():
        text = text[:-1]
    return text or None


def extract_answer(content: str | None, field: str = "answer") -> str | None:
    """The final answer in ``content`` (the ``answer`` field of its JSON), or None."""
    obj = parse_json(content)
    if obj is not None and field in obj:
        return normalise_answer(obj[field])
    if content and field == "answer":
        m = _ANSWER_FIELD.search(content)
        if m:
            raw = m.group(1)
            try:
                return normalise_answer(orjson.loads(raw))
            except orjson.JSONDecodeError:
                return normalise_answer(raw.strip('"'))
    return None


def has_fields(content: str | None, required: Iterable[str]) -> bool:
    obj = parse_json(content)
    return obj is not None and all(k in obj for k in required)


def is_refusal(content: str | None) -> bool:
    """Empty content, or an answer that opens by declining."""
    return not content or not content.strip() or bool(_REFUSAL.match(content))


def logprob_confidence(response: ChatResponse) -> float | None:
    """exp(mean token log-probability) of the answer, when the upstream returned logprobs."""
    lp = response.logprobs
    items = lp.get("content") if isinstance(lp, dict) else lp
    if not isinstance(items, list) or not items:
        return None
    values = [float(t["logprob"]) for t in items if isinstance(t, dict) and "logprob" in t]
    if not values:
        return None
    return math.exp(sum(values) / len(values))


def agreement(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most common non-empty answer and how many gave it (earliest wins ties)."""
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    if not counts:
        return None, 0
    top = max(counts, key=lambda a: counts[a])
    return top, counts[top]


@dataclass(slots=True, frozen=True)
class Verdict:
    ok: bool
    answer: str | None
    reason: str | None = None
    confidence: float | None = None


def check_response(
    response: ChatResponse | None,
    checks: Sequence[str] = ("refusal", "answer"),
    required: Sequence[str] = ("answer",),
    min_logprob: float | None = None,
) -> Verdict:
    """Run the named checks; a failed check gives ``ok=False`` with the reason."""
    if response is None:
        return Verdict(False, None, "no response")
    content = response.content
    answer = extract_answer(content)
    confidence = logprob_confidence(response) if "logprob" in checks else None
    if "refusal" in checks and is_refusal(content):
        return Verdict(False, None, "empty or refusal")
    if "json" in checks and not has_fields(content, required):
        return Verdict(False, answer, "not JSON with " + ", ".join(required))
    if "answer" in checks and answer is None:
        return Verdict(False, None, "no extractable answer")
    if min_logprob is not None and confidence is not None and confidence < min_logprob:
        return Verdict(False, answer, f"low confidence {confidence:.2f}", confidence)
    return Verdict(True, answer, None, confidence)


_JUDGE_PROMPT = (
    "You are grading another assistant's answer. Reply with JSON only: "
    '{{"score": N}} where N is 0 to 10 (10: certainly correct and complete).\n\n'
    "## Task\n{task}\n\n## Answer to grade\n{answer}"
)


def judge_request(request: ChatRequest, answer: str, judge_model: str) -> ChatRequest:
    """The request asking ``judge_model`` to score ``answer`` to ``request``."""
    task = "\n\n".join(
        str(m.get("content")) for m in request.messages if isinstance(m.get("content"), str)
    )
    prompt = _JUDGE_PROMPT.format(task=task, answer=answer)
    return ChatRequest(
        model=judge_model,
        messages=[{"role": "user", "content": prompt}],
        params={"temperature": 0, "max_tokens": 20},
        metadata=dict(request.metadata),
    )


def judge_score(response: ChatResponse | None) -> float | None:
    """The judge's score in [0, 1], or None when its reply is unusable."""
    if response is None or not response.content:
        return None
    obj = parse_json(response.content)
    raw: Any = obj.get("score") if obj else None
    if raw is None:
        m = re.search(r"\b(10|[0-9])\b", response.content)
        raw = m.group(1) if m else None
    try:
        score = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    if score is None:
        return None
    return min(max(score / 10.0, 0.0), 1.0)
