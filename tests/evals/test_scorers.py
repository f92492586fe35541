from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelmix.evals import judge
from modelmix.evals.dataset import EvalItem
from modelmix.evals.scorers import ScorerError, extract, last_number, score
from modelmix.simulated.judging import judge_reply


def item(**kw: Any) -> EvalItem:
    return EvalItem.model_validate({"id": "x", "prompt": "What is 6 * 7?", **kw})


async def no_judge(model: str, prompt: str) -> str | None:
    raise AssertionError("no judge expected")


async def run(it: EvalItem, answer: str) -> float:
    return (await score(it, answer, no_judge)).value


def test_extract_and_numbers() -> None:
    text = "[simulated m] 6 * 7 = 42\nso 42."
    assert extract(text, "last_line") == "so 42."
    assert extract(text, "last_number") == "42.0"
    assert extract('{"answer": 5}', "json:answer") == "5"
    assert extract("x = 12", r"re:=\s*(\d+)") == "12"
    assert extract("none", "json:answer") is None
    assert last_number("1,234.5 and then -3") == -3.0
    with pytest.raises(ScorerError):
        extract("a", "middle")


async def test_exact_regex_numeric() -> None:
    assert await run(item(reference="Paris"), "  paris ") == 1.0
    assert (
        await run(
            item(reference="Paris", scorer={"type": "exact", "case_sensitive": True}), "paris"
        )
        == 0.0
    )
    assert (
        await run(
            item(reference="42", scorer={"type": "exact", "extract": r"re:=\s*(\d+)"}), "6 * 7 = 42"
        )
        == 1.0
    )
    assert await run(item(scorer={"type": "regex", "pattern": r"= 42\b"}), "6 * 7 = 42") == 1.0
    assert (
        await run(item(scorer={"type": "regex", "pattern": "sorry", "negate": True}), "sorry")
        == 0.0
    )
    assert await run(item(reference=42), "6 * 7 = 43") == 0.0
    assert await run(item(reference=42), "no number") == 0.0
    tolerant = item(reference=100, scorer={"type": "numeric", "rel_tolerance": 0.05})
    assert await run(tolerant, "about 104") == 1.0 and await run(tolerant, "about 106") == 0.0
    with pytest.raises(ScorerError, match="numeric reference"):
        await run(item(reference="many", scorer="numeric"), "5")
    with pytest.raises(ScorerError, match="bad regex"):
        await run(item(scorer={"type": "regex", "pattern": "("}), "x")


async def test_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "required": ["n"],
    }
    it = item(scorer={"type": "json_schema", "schema": schema})
    assert await run(it, 'Here: {"n": 3}') == 1.0
    bad = await score(it, '{"n": -1}', no_judge)
    assert bad.value == 0.0 and "n:" in bad.detail["error"] and "minimum" in bad.detail["error"]
    missing = await score(it, "no json at all", no_judge)
    assert missing.value == 0.0 and missing.detail["error"] == "no JSON object in the answer"
    with pytest.raises(ScorerError, match="invalid JSON schema"):
        await run(item(scorer={"type": "json_schema", "schema": {"type": 5}}), "{}")


async def test_python_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_scorers.py").write_text(
        "def half(answer, item):\n    return 0.5\n"
        "def detailed(answer, item):\n    return True, {'why': item.id}\n"
        "def broken(answer, item):\n    return 'yes'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert await run(item(scorer={"type": "python", "function": "my_scorers:half"}), "a") == 0.5
    got = await score(
        item(scorer={"type": "python", "function": "my_scorers:detailed"}), "a", no_judge
    )
    assert got.value == 1.0 and got.detail == {"why": "x"}
    with pytest.raises(ScorerError, match="expected a bool or a number"):
        await run(item(scorer={"type": "python", "function": "my_scorers:broken"}), "a")
    with pytest.raises(ScorerError, match="cannot import"):
        await run(item(scorer={"type": "python", "function": "no_such_module:f"}), "a")
    with pytest.raises(ScorerError, match="no function"):
        await run(item(scorer={"type": "python", "function": "my_scorers:absent"}), "a")
    sys.modules.pop("my_scorers", None)


async def test_judge_prompt_round_trip_with_the_simulated_judge() -> None:
    prompts: list[str] = []

    async def sim_judge(model: str, prompt: str) -> str | None:
        prompts.append(prompt)
        return judge_reply(prompt, None)

    it = item(scorer={"type": "judge", "rubric": "The number must be right."})
    right = await score(it, "6 * 7 = 42", sim_judge, default_judge="j")
    wrong = await score(it, "6 * 7 = 43", sim_judge, default_judge="j")
    assert (right.value, wrong.value) == (1.0, 0.0) and right.detail == {"judge": "j"}
    assert "Rubric: The number must be right." in prompts[0] and "## Answer to grade" in prompts[0]
    with pytest.raises(ScorerError, match="needs a judge model"):
        await score(it, "x", sim_judge)

    async def rambling(model: str, prompt: str) -> str | None:
        return "I cannot decide."

    unusable = await score(it, "x", rambling, default_judge="j")
    assert unusable.value == 0.0 and unusable.detail["error"] == "unusable verdict"


def test_verdict_parsing() -> None:
    assert judge.parse_single('{"score": 7}') == 0.7
    assert judge.parse_single("Score: 10") == 1.0
    assert judge.parse_single('{"score": 42}') == 1.0  # clipped
    assert judge.parse_single("no idea") is None and judge.parse_single(None) is None
    assert judge.parse_pair('{"a": 10, "b": 3}') == (1.0, 0.3)
    assert judge.parse_pair('{"a": 10}') is None
    pair = judge.pair_prompt("What is 3*3?", "9", "10")
    assert orjson.loads(judge_reply(pair, None)) == {"a": 10, "b": 0}
    assert (
        judge.question_text(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        )
        == "system: be brief\nuser: hi"
    )
