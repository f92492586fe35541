"""The simulated models' one real skill: simple arithmetic found in a prompt.

``find_arithmetic`` returns the expression as written, its value and how many operators it has
(the measure of difficulty a simulated model's skill is compared with); ``wrong_value`` is the
answer a model gets wrong gives (off by one, deterministically).
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

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


def find_arithmetic(text: str) -> tuple[str, float, int] | None:
    """(the expression as shown, its value, its number of operators) for the first simple
    arithmetic expression in ``text``, else ``None``."""
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
            tree = ast.parse(source, mode="eval").body
            value = _evaluate(tree)
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        ops = sum(isinstance(node, ast.BinOp) for node in ast.walk(tree))
        pretty = re.sub(r"\s*([+\-*/\u00d7\u00f7^x])\s*", r" \1 ", raw).strip()
        return pretty, value, ops
    return None


def format_value(value: float) -> str:
    """``4`` for 4.0, floats rounded to 6 places."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else str(round(value, 6))


def wrong_value(value: float) -> float:
    """What a model that gets the sum wrong answers: off by one."""
    return value + 1


def solve_arithmetic(text: str) -> str | None:
    """``"2 + 2 = 4"`` for the first simple arithmetic expression in ``text``, else ``None``."""
    found = find_arithmetic(text)
    if found is None:
        return None
    pretty, value, _ = found
    return f"{pretty} = {format_value(value)}"


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
