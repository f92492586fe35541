"""A simulated LLM judge: how a simulated model answers a grading prompt.

A grading prompt has Markdown sections (the layout ``modelmix.evals.judge`` writes)::

    ## Question            the task the graded answer responds to
    ## Reference answer    optional
    ## Answer to grade     one answer: reply {"score": N}
    ## Answer A / ## Answer B   two answers to compare: reply {"a": N, "b": N}

Scores run from 0 to 10. The simulated judge solves the question's arithmetic itself (with its
own skill: a small judge gets hard sums wrong, like a weak real judge) and gives 10 to an answer
whose last number matches, 0 otherwise; without arithmetic it checks for the reference answer;
with neither it gives a refusal 0 and anything else 7. Deterministic, like every simulated
answer.
"""

from __future__ import annotations

import re

import orjson

from modelmix.simulated.arithmetic import find_arithmetic, wrong_value

QUESTION = "Question"
REFERENCE = "Reference answer"
SINGLE = "Answer to grade"
PAIR_A = "Answer A"
PAIR_B = "Answer B"

_SECTION = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_REFUSAL = re.compile(
    r"^\s*(\[simulated [^\]]*\]\s*)?(i'?m sorry|i am sorry|i can(?:'|no)t|i am unable)",
    re.IGNORECASE,
)


def sections(text: str) -> dict[str, str]:
    """``## Heading`` -> the text under it, for every heading in ``text``."""
    out: dict[str, str] = {}
    marks = list(_SECTION.finditer(text))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out[m.group(1)] = text[m.end() : end].strip()
    return out


def is_grading_prompt(text: str) -> bool:
    if "## " not in text:
        return False
    found = sections(text)
    return QUESTION in found and (SINGLE in found or (PAIR_A in found and PAIR_B in found))


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1]) if found else None


def grade(question: str, answer: str, reference: str | None, skill: int | None) -> int:
    """0 to 10: how the simulated judge rates ``answer``."""
    if not answer.strip() or _REFUSAL.match(answer):
        return 0
    found = find_arithmetic(question)
    if found is not None:
        _, value, ops = found
        if skill is not None and ops > skill:
            value = wrong_value(value)
        given = last_number(answer)
        if given is None:
            return 0
        return 10 if abs(given - value) <= 1e-6 * max(1.0, abs(value)) else 0
    if reference:
        return 10 if reference.strip().lower() in answer.lower() else 0
    return 7


def judge_reply(text: str, skill: int | None) -> str:
    """The JSON verdict for the grading prompt ``text``."""
    found = sections(text)
    question = found.get(QUESTION, "")
    reference = found.get(REFERENCE)
    if SINGLE in found:
        return orjson.dumps({"score": grade(question, found[SINGLE], reference, skill)}).decode()
    a = grade(question, found.get(PAIR_A, ""), reference, skill)
    b = grade(question, found.get(PAIR_B, ""), reference, skill)
    return orjson.dumps({"a": a, "b": b}).decode()
