"""What a simulated model answers: deterministic text, tool calls and JSON.

Each wire format parses its request into an :class:`Ask` (the few facts an answer depends
on) and renders the :class:`Answer` back in its own shape. Same ``Ask`` and model, same
answer: no randomness anywhere.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from modelmix.simulated import judging
from modelmix.simulated.arithmetic import (
    find_arithmetic,
    format_value,
    solve_arithmetic,
    wrong_value,
)
from modelmix.simulated.behaviour import Behaviour
from modelmix.simulated.schema_values import synthesise

__all__ = ["Answer", "Ask", "Tool", "compose", "estimate_tokens", "solve_arithmetic", "summarise"]

#: Why an answer ended, in neutral terms each wire format maps to its own vocabulary.
Finish = Literal["stop", "length", "tool_call", "stop_sequence"]

CHARS_PER_TOKEN = 4
REFUSAL = "I'm sorry, but I can't help with that request."
_SUMMARY_WORDS = 24
#: The ``system_fingerprint`` of a model after its silent update (``updateafter<N>``).
UPDATED_FINGERPRINT = "fp_simulated_v2"
#: What an updated model appends to every text answer (its output gets longer).
UPDATED_SUFFIX = (
    " Since my last update I also explain each step in more detail, restate the question, "
    "and add a short summary of the reasoning at the end of every answer."
)


@dataclass(slots=True)
class Tool:
    name: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class Ask:
    """The facts of a request that decide the answer, whatever the wire format."""

    model: str
    #: Text of the last user message (text parts joined).
    last_user_text: str = ""
    #: Characters of all the prompt's text (messages, system, tool definitions).
    prompt_chars: int = 0
    #: ``(tool name or call id, result text)`` when the last message is a tool result.
    tool_result: tuple[str, str] | None = None
    tools: list[Tool] = field(default_factory=list)
    #: The tool the request forces, if any.
    forced_tool: str | None = None
    #: Tool choice "none": never call a tool.
    no_tools: bool = False
    #: Answer with some JSON object.
    json_mode: bool = False
    #: Answer with an object that validates against this schema.
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    #: Gemini ``alt=sse`` (else a streamed JSON array).
    sse: bool = True
    #: OpenAI ``stream_options.include_usage``.
    include_usage: bool = False
    #: OpenAI ``logprobs`` / ``top_logprobs``.
    logprobs: bool = False
    top_logprobs: int = 0
    #: Anthropic extended thinking asked for (``thinking`` enabled or adaptive).
    thinking: bool = False
    #: Anthropic prompt caching: the request's ``cache_control`` breakpoints (see
    #: prompt_cache.py), and the characters read from and written to the cache.
    cache_points: list[tuple[bytes, int]] = field(default_factory=list)
    cache_read_chars: int = 0
    cache_write_chars: int = 0


@dataclass(slots=True)
class Answer:
    text: str | None
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None
    #: ``tool_input`` as JSON text.
    tool_arguments: str = ""
    finish: Finish = "stop"
    stop_sequence: str | None = None
    #: All prompt tokens, cached ones included.
    prompt_tokens: int = 1
    completion_tokens: int = 1
    cached_tokens: int = 0
    #: OpenAI ``system_fingerprint`` to report (None: the wire format's default).
    fingerprint: str | None = None


def estimate_tokens(chars: int) -> int:
    """A deterministic token estimate: one token per four characters, at least one."""
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def _percent(*parts: object) -> int:
    """A deterministic number in [0, 100) from ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def gets_wrong(ask: Ask, behaviour: Behaviour, call: int) -> bool:
    """Whether this call's arithmetic comes out wrong (whatever its difficulty)."""
    if behaviour.wrong_after is not None and call > behaviour.wrong_after:
        return True
    if behaviour.accuracy is not None and _percent(ask.model, ask.last_user_text) >= (
        behaviour.accuracy
    ):
        return True
    return bool(behaviour.noise) and _percent(ask.model, ask.last_user_text, call) < behaviour.noise


def compose(ask: Ask, behaviour: Behaviour, call: int = 1) -> Answer:
    """The answer a simulated model gives to ``ask``; ``call`` counts this model's calls (1 for
    the first), for the behaviours that change over time."""
    cached = behaviour.cached
    prompt_tokens = estimate_tokens(ask.prompt_chars) + cached
    updated = behaviour.update_after is not None and call > behaviour.update_after
    answer = _compose(ask, behaviour, call, prompt_tokens, cached, updated)
    if updated:
        answer.fingerprint = UPDATED_FINGERPRINT
    return answer


def _compose(
    ask: Ask, behaviour: Behaviour, call: int, prompt_tokens: int, cached: int, updated: bool
) -> Answer:
    refusing = behaviour.refuse_after is not None and call > behaviour.refuse_after
    if behaviour.refuse or (refusing and call % 2 == 0):
        return _finish_text(ask, f"[simulated {ask.model}] {REFUSAL}", prompt_tokens, cached)
    if judging.is_grading_prompt(ask.last_user_text):
        verdict = judging.judge_reply(ask.last_user_text, behaviour.skill)
        return _finish_text(ask, verdict, prompt_tokens, cached)
    asked = asked_tool_call(ask) if ask.tool_result is None and not ask.no_tools else None
    tool = asked[0] if asked is not None else _tool_to_call(ask)
    if tool is not None:
        if asked is not None:
            arguments: Any = asked[1]
        else:
            arguments = synthesise(tool.parameters, all_properties=False) if tool.parameters else {}
        if not isinstance(arguments, dict):
            arguments = {}
        text = orjson.dumps(arguments).decode()
        return Answer(
            text=None,
            tool_name=tool.name,
            tool_input=arguments,
            tool_arguments=text,
            finish="tool_call",
            prompt_tokens=prompt_tokens,
            completion_tokens=estimate_tokens(len(tool.name) + len(text)),
            cached_tokens=cached,
        )
    if ask.json_schema is not None:
        value = synthesise(ask.json_schema)
        return _finish_text(ask, orjson.dumps(value).decode(), prompt_tokens, cached)
    reply = _reply(ask, behaviour, call)
    if ask.json_mode:
        payload = {"simulated": True, "model": ask.model, "answer": reply}
        return _finish_text(ask, orjson.dumps(payload).decode(), prompt_tokens, cached)
    text = f"[simulated {ask.model}] {reply}"
    if updated:
        text += UPDATED_SUFFIX
    return _finish_text(ask, text, prompt_tokens, cached)


#: ``call tool NAME with {...}`` in the prompt: a call to that tool with those arguments.
_TOOL_DIRECTIVE = re.compile(r"call tool ([A-Za-z0-9_-]{1,64}) with (\{.*?\})(?=\s*(?:$|\n))", re.S)
#: More tools than this is an agent's toolbox: a model calls one only when asked to.
TOOLBOX = 8


def asked_tool_call(ask: Ask) -> tuple[Tool, dict[str, Any]] | None:
    """The tool call the prompt spells out (``call tool NAME with {json}``), if it names one
    of the request's tools with a JSON object."""
    found = _TOOL_DIRECTIVE.search(ask.last_user_text)
    if found is None:
        return None
    try:
        arguments = orjson.loads(found.group(2))
    except orjson.JSONDecodeError:
        return None
    for tool in ask.tools:
        if tool.name == found.group(1) and isinstance(arguments, dict):
            return tool, arguments
    return None


def _tool_to_call(ask: Ask) -> Tool | None:
    if not ask.tools or ask.no_tools or ask.tool_result is not None:
        return None
    if ask.forced_tool is not None:
        for tool in ask.tools:
            if tool.name == ask.forced_tool:
                return tool
    if len(ask.tools) > TOOLBOX:
        return None
    return ask.tools[0]


def _finish_text(ask: Ask, text: str, prompt_tokens: int, cached: int) -> Answer:
    finish: Finish = "stop"
    stop_sequence: str | None = None
    cut_at = len(text)
    for stop in ask.stop:
        if stop:
            position = text.find(stop)
            if 0 <= position < cut_at:
                cut_at, stop_sequence = position, stop
    if stop_sequence is not None:
        text, finish = text[:cut_at], "stop_sequence"
    if ask.max_tokens is not None and estimate_tokens(len(text)) > ask.max_tokens:
        text, finish, stop_sequence = text[: ask.max_tokens * CHARS_PER_TOKEN], "length", None
    return Answer(
        text=text,
        finish=finish,
        stop_sequence=stop_sequence,
        prompt_tokens=prompt_tokens,
        completion_tokens=estimate_tokens(len(text)),
        cached_tokens=cached,
    )


def _reply(ask: Ask, behaviour: Behaviour, call: int) -> str:
    if ask.tool_result is not None:
        name, result = ask.tool_result
        return f"The tool {name} returned: {summarise(result)}"
    question = ask.last_user_text
    found = find_arithmetic(question)
    if found is not None:
        pretty, value, ops = found
        too_hard = behaviour.skill is not None and ops > behaviour.skill
        if too_hard or gets_wrong(ask, behaviour, call):
            value = wrong_value(value)
        return f"{pretty} = {format_value(value)}"
    if not question.strip():
        return "You sent no text. This is a simulated answer; no real model was called."
    return (
        f'You said: "{summarise(question)}". This is a simulated answer; no real model was called.'
    )


def summarise(text: str, words: int = _SUMMARY_WORDS) -> str:
    """The first ``words`` words of ``text`` on one line, with an ellipsis if cut."""
    parts = text.split()
    if len(parts) <= words:
        return " ".join(parts)
    return " ".join(parts[:words]) + "..."
