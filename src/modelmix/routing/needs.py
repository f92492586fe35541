"""What a request needs from a model: derived once per request (from ``request.facts``),
checked against capabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelmix.request_facts import TOKENS_PER_IMAGE, TOKENS_PER_MESSAGE
from modelmix.types import ChatRequest

if TYPE_CHECKING:
    from modelmix.adaptive.explore import Posteriors
    from modelmix.adaptive.live import LiveStats

#: Characters per token used for the pre-call estimate. English prose runs ~4 characters per
#: token in the GPT/Claude tokenizers; we use 3 so the estimate errs high, since it only guards
#: context windows (a prompt is never sent to a model it would overflow).
_CHARS_PER_TOKEN = 3


@dataclass(slots=True, frozen=True)
class Needs:
    tools: bool
    images: bool
    json_object: bool
    json_schema: bool
    stream: bool
    prompt_tokens: int  # estimated, errs high
    max_tokens: int | None
    #: How close the request's tightest budget is to what it allows, in [0, 1] (see
    #: budgets/degrade.py): strategies pick cheaper models as it rises.
    budget_pressure: float = 0.0
    #: Live per-deployment latency and load estimates (adaptive routing, issue 15).
    live: LiveStats | None = None
    #: The request's most specific subject with a personal offset (``personal/``), or None.
    personal: tuple[str, float] | None = None
    #: Acceptance posteriors of routes' exploration candidates (``adaptive/explore.py``).
    explore: Posteriors | None = None


def needs_of(
    request: ChatRequest,
    budget_pressure: float = 0.0,
    live: LiveStats | None = None,
    personal: tuple[str, float] | None = None,
    explore: Posteriors | None = None,
) -> Needs:
    chars, images, _ = request.facts.scan()
    fmt = request.response_format.get("type") if request.response_format else None
    max_tokens = request.params.get("max_tokens")
    return Needs(
        tools=bool(request.tools),
        images=images > 0,
        json_object=fmt == "json_object",
        json_schema=fmt == "json_schema",
        stream=request.stream,
        prompt_tokens=chars // _CHARS_PER_TOKEN
        + TOKENS_PER_MESSAGE * len(request.messages)
        + TOKENS_PER_IMAGE * images,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        budget_pressure=budget_pressure,
        live=live,
        personal=personal,
        explore=explore,
    )
