"""The behaviour a simulated model shows, read from its name.

A model name is split on ``-``; each token that matches the grammar below switches a behaviour
on, every other token is just part of the name. See the package docstring for the grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: Status codes a model name can ask for directly.
ERROR_STATUSES = frozenset({429, 500, 503, 529})

_NUMBERED = re.compile(
    r"^(slow|ttft|flaky|cached|skill|acc|noise|wrongafter|updateafter|refuseafter)(\d{1,7})$"
)
#: Model sizes: the most arithmetic operators each computes right (``large``: any number).
SIZE_SKILL: dict[str, int | None] = {"small": 2, "medium": 3, "large": None}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What the simulator does for one model name. The default is a prompt, correct answer."""

    #: Milliseconds to wait before any response (errors too) and between stream chunks.
    slow_ms: int = 0
    #: Milliseconds to wait before the first byte of a successful answer's content.
    ttft_ms: int = 0
    #: Fail every call with this HTTP status (vendor-format error body).
    error_status: int | None = None
    #: The first ``flaky`` calls for this exact model name fail with 500.
    flaky: int = 0
    #: Sleep far longer than any client timeout.
    timeout: bool = False
    #: Abort the TCP connection without a response.
    reset: bool = False
    #: Drop the connection part-way through the answer.
    cut: bool = False
    #: Answer 200 with a body (or SSE data) that is not JSON.
    malformed: bool = False
    #: Report this many cached prompt tokens.
    cached: int = 0
    #: Answer with a refusal.
    refuse: bool = False
    #: Arithmetic with more than this many operators comes out wrong (None: always right).
    skill: int | None = None
    #: Percent of prompts answered right (decided per model and prompt, deterministically).
    accuracy: int | None = None
    #: Percent of calls answered wrong, decided per call (from the model's call number).
    noise: int = 0
    #: After this many calls (per exact model name) every arithmetic answer is wrong.
    wrong_after: int | None = None
    #: After this many calls the model is silently updated: a new ``system_fingerprint`` and
    #: longer answers.
    update_after: int | None = None
    #: After this many calls every other answer is a refusal.
    refuse_after: int | None = None


@lru_cache(maxsize=4096)
def parse_behaviour(model: str) -> Behaviour:
    """Read the behaviour tokens out of ``model`` (case-insensitive; unknown tokens ignored)."""
    slow = ttft = flaky = cached = noise = 0
    error_status: int | None = None
    skill: int | None = None
    accuracy: int | None = None
    wrong_after: int | None = None
    update_after: int | None = None
    refuse_after: int | None = None
    timeout = reset = cut = malformed = refuse = False
    for token in model.lower().replace("_", "-").split("-"):
        if token in SIZE_SKILL:
            skill = SIZE_SKILL[token]
        elif token.isdigit() and int(token) in ERROR_STATUSES:
            error_status = int(token)
        elif token == "timeout":
            timeout = True
        elif token == "reset":
            reset = True
        elif token == "cut":
            cut = True
        elif token == "malformed":
            malformed = True
        elif token in ("refuse", "refusal"):
            refuse = True
        elif match := _NUMBERED.match(token):
            name, value = match.group(1), int(match.group(2))
            if name == "slow":
                slow = value
            elif name == "ttft":
                ttft = value
            elif name == "flaky":
                flaky = value
            elif name == "cached":
                cached = value
            elif name == "skill":
                skill = value
            elif name == "acc":
                accuracy = min(value, 100)
            elif name == "noise":
                noise = min(value, 100)
            elif name == "wrongafter":
                wrong_after = value
            elif name == "updateafter":
                update_after = value
            else:
                refuse_after = value
    return Behaviour(
        slow_ms=slow,
        ttft_ms=ttft,
        error_status=error_status,
        flaky=flaky,
        timeout=timeout,
        reset=reset,
        cut=cut,
        malformed=malformed,
        cached=cached,
        refuse=refuse,
        skill=skill,
        accuracy=accuracy,
        noise=noise,
        wrong_after=wrong_after,
        update_after=update_after,
        refuse_after=refuse_after,
    )
