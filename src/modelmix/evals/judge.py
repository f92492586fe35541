"""The LLM judge's prompts and how its verdicts are read.

One answer: the judge replies ``{"score": N}``, N from 0 to 10, read as N / 10. Two answers
(shadow traffic: live vs candidate): ``{"a": N, "b": N}``. The prompt is Markdown with fixed
section headings (``## Question``, ``## Reference answer``, ``## Answer to grade`` or
``## Answer A`` / ``## Answer B``); the simulated upstream's judge reads the same layout.
"""

from __future__ import annotations

import re
from typing import Any

from modelmix.routing.verifiers import parse_json
from modelmix.types import ChatRequest

DEFAULT_RUBRIC = (
    "A good answer is correct, complete and answers exactly what was asked; a wrong final "
    "answer scores 0 however well it is explained."
)
#: Judge calls are short: a JSON verdict.
JUDGE_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 60}

_SINGLE = """You are grading an assistant's answer.
Rubric: {rubric}
Reply with JSON only: {{"score": N}} where N is an integer from 0 to 10 (10: fully meets the \
rubric).

## Question
{question}
{reference}
## Answer to grade
{answer}
"""

_PAIR = """You are comparing two assistants' answers to the same question.
Rubric: {rubric}
Reply with JSON only: {{"a": N, "b": N}}: each answer's score, an integer from 0 to 10.

## Question
{question}
{reference}
## Answer A
{a}

## Answer B
{b}
"""


def _reference(reference: object) -> str:
    if reference is None:
        return ""
    return f"\n## Reference answer\n{reference}\n"


def single_prompt(
    question: str, answer: str, reference: object = None, rubric: str | None = None
) -> str:
    return _SINGLE.format(
        rubric=rubric or DEFAULT_RUBRIC,
        question=question.strip(),
        reference=_reference(reference),
        answer=answer.strip(),
    )


def pair_prompt(
    question: str, a: str, b: str, reference: object = None, rubric: str | None = None
) -> str:
    return _PAIR.format(
        rubric=rubric or DEFAULT_RUBRIC,
        question=question.strip(),
        reference=_reference(reference),
        a=a.strip(),
        b=b.strip(),
    )


def judge_request(judge: str, prompt: str) -> ChatRequest:
    return ChatRequest(
        model=judge,
        messages=[{"role": "user", "content": prompt}],
        params=dict(JUDGE_PARAMS),
        metadata={"modelmix": "judge"},
    )


def _unit(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if value != value:  # NaN
        return None
    return min(max(value / 10.0, 0.0), 1.0)


def parse_single(content: str | None) -> float | None:
    """The judge's score in [0, 1], or None when its reply is unusable."""
    if not content:
        return None
    obj = parse_json(content)
    if obj is not None and "score" in obj:
        return _unit(obj["score"])
    m = re.search(r"score\D{0,5}(10|\d)\b", content, re.IGNORECASE)
    return _unit(m.group(1)) if m else None


def parse_pair(content: str | None) -> tuple[float, float] | None:
    """(score of A, score of B) in [0, 1], or None when the reply is unusable."""
    obj = parse_json(content)
    if obj is None:
        return None
    a, b = _unit(obj.get("a")), _unit(obj.get("b"))
    if a is None or b is None:
        return None
    return a, b


def question_text(messages: list[dict[str, Any]]) -> str:
    """A chat's messages as the judge's question: text contents, roles shown for dialogues."""
    texts: list[tuple[str, str]] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
        if isinstance(content, str) and content.strip():
            texts.append((str(m.get("role", "user")), content))
    if len(texts) == 1:
        return texts[0][1]
    return "\n".join(f"{role}: {text}" for role, text in texts)
