"""What a simulated model answers: deterministic text, tool calls and JSON.

Each wire format parses its request into an :class:`Ask` (the few facts an answer depends
on) and renders the :class:`Answer` back in its own shape. Same ``Ask`` and model, same
answer: no randomness anywhere.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from modelmix.simulated.behaviour import Behaviour
from modelmix.simulated.schema_values import synthesise

#: Why an answer ended, in neutral terms each wire format maps to its own vocabulary.
Finish = Literal["stop", "length", "tool_call", "stop_sequence"]

CHARS_PER_TOKEN = 4
REFUSAL = "I'm sorry, but I can't help with that request."
_SUMMARY_WORDS = 24


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


def estimate_tokens(chars: int) -> int:
    """A deterministic token estimate: one token per four characters, at least one."""
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def compose(ask: Ask, behaviour: Behaviour) -> Answer:
    """The answer a simulated model gives to ``ask``."""
    cached = behaviour.cached
    prompt_tokens = estimate_tokens(ask.prompt_chars) + cached
    if behaviour.refuse:
        return _finish_text(ask, f"[simulated {ask.model}] {REFUSAL}", prompt_tokens, cached)
    tool = _tool_to_call(ask)
    if tool is not None:
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
    if ask.json_mode:
        payload = {"simulated": True, "model": ask.model, "answer": _reply(ask)}
        return _finish_text(ask, orjson.dumps(payload).decode(), prompt_tokens, cached)
    return _finish_text(ask, f"[simulated {ask.model}] {_reply(ask)}", prompt_tokens, cached)


def _tool_to_call(ask: Ask) -> Tool | None:
    if not ask.tools or ask.no_tools or ask.tool_result is not None:
        return None
    if ask.forced_tool is not None:
        for tool in ask.tools:
            if tool.name == ask.forced_tool:
                return tool
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


def _reply(ask: Ask) -> str:
    if ask.tool_result is not None:
        name, result = ask.tool_result
        return f"The tool {name} returned: {summarise(result)}"
    question = ask.last_user_text
    arithmetic = solve_arithmetic(question)
    if arithmetic is not None:
        return arithmetic
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


# --- arithmetic -----------------------------------------------------------------------------

_EXPRESSION = re.compile(r"[-+(]*\s*\d[\d\s.+\-*/x\u00d7\u00f7^()]*")
#: "2-3 sentences", "2024-01-15": ranges and dates, not subtractions.
_RANGE = re.compile(r"\d+(-\d+)+")
_OPERATORS: dict[type[ast.AST], Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}


def solve_arithmetic(text: str) -> str | None:
    """``"2 + 2 = 4"`` for the first simple arithmetic expression in ``text``, else ``None``."""
    if len(text) > 2000:
        return None
    for match in _EXPRESSION.finditer(text):
        raw = match.group(0).strip().rstrip(".")
        if not any(op in raw[1:] for op in "+-*/x\u00d7\u00f7^") or _RANGE.fullmatch(raw):
            continue
        source = (
            raw.replace("\u00d7", "*").replace("x", "*").replace("\u00f7", "/").replace("^", "**")
        )
        try:
            value = _evaluate(ast.parse(source, mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, float):
            value = round(value, 6)
        pretty = re.sub(r"\s*([+\-*/\u00d7\u00f7^x])\s*", r" \1 ", raw).strip()
        return f"{pretty} = {value}"
    return None


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
            raise ValueError("exponent too large")
        result: float = _OPERATORS[type(node.op)](left, right)
        return result
    raise ValueError("not arithmetic")
