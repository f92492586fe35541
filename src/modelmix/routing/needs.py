"""What a request needs from a model: derived once per request, checked against capabilities."""

from __future__ import annotations

from dataclasses import dataclass

from modelmix.types import ChatRequest

#: Characters per token used for the pre-call estimate. English prose runs ~4 characters per
#: token in the GPT/Claude tokenizers; we use 3 so the estimate errs high, since it only guards
#: context windows (a prompt is never sent to a model it would overflow).
_CHARS_PER_TOKEN = 3
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_IMAGE = 1000


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


def _text_len_and_images(content: object) -> tuple[int, int]:
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                chars += len(str(part.get("text", "")))
            elif kind == "image_url":
                images += 1
    return chars, images


def needs_of(request: ChatRequest, budget_pressure: float = 0.0) -> Needs:
    chars = images = 0
    for message in request.messages:
        c, i = _text_len_and_images(message.get("content"))
        chars += c
        images += i
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            chars += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    if request.tools:
        chars += sum(len(str(tool)) for tool in request.tools)
    fmt = (request.response_format or {}).get("type")
    max_tokens = request.params.get("max_tokens")
    return Needs(
        tools=bool(request.tools),
        images=images > 0,
        json_object=fmt == "json_object",
        json_schema=fmt == "json_schema",
        stream=request.stream,
        prompt_tokens=chars // _CHARS_PER_TOKEN
        + _TOKENS_PER_MESSAGE * len(request.messages)
        + _TOKENS_PER_IMAGE * images,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        budget_pressure=budget_pressure,
    )
