"""Simulated models whose quality differs, or changes on purpose, and the simulated judge."""

from __future__ import annotations

import orjson
import pytest

from modelmix.simulated.answers import UPDATED_FINGERPRINT, UPDATED_SUFFIX, Ask, compose
from modelmix.simulated.arithmetic import find_arithmetic
from modelmix.simulated.behaviour import Behaviour, parse_behaviour
from modelmix.simulated.judging import judge_reply


def _text(model: str, prompt: str, call: int = 1) -> str:
    ask = Ask(model=model, last_user_text=prompt, prompt_chars=len(prompt))
    text = compose(ask, parse_behaviour(model), call).text
    assert text is not None
    return text


def test_quality_tokens_parse() -> None:
    b = parse_behaviour("sim-skill3-acc80-noise10-wrongafter5-updateafter7")
    assert (b.skill, b.accuracy, b.noise, b.wrong_after, b.update_after) == (3, 80, 10, 5, 7)
    assert parse_behaviour("sim-medium").skill == 3
    assert parse_behaviour("sim-large").skill is None
    assert parse_behaviour("sim-acc250").accuracy == 100


def test_operators_are_counted() -> None:
    assert find_arithmetic("What is 2+2?") == ("2 + 2", 4, 1)
    found = find_arithmetic("What is (3 + 4) * 5 - 6 / 2?")
    assert found is not None and found[1:] == (32, 4)


def test_skill_bounds_the_sums_a_model_gets_right() -> None:
    hard = "What is 12 * 7 + 5 - 3?"  # three operators: 86
    assert _text("sim-small", hard).endswith("= 87")  # skill 2: off by one
    assert _text("sim-medium", hard).endswith("= 86")
    assert _text("sim-large", hard).endswith("= 86")
    assert _text("sim-small", "What is 2+2?").endswith("= 4")


def test_accuracy_is_per_prompt_and_deterministic() -> None:
    prompts = [f"What is {a} + {a + 3}?" for a in range(200)]
    right = [_text("sim-acc70", p).endswith(f"= {2 * a + 3}") for a, p in enumerate(prompts)]
    assert 0.6 < sum(right) / len(right) < 0.8
    again = [_text("sim-acc70", p).endswith(f"= {2 * a + 3}") for a, p in enumerate(prompts)]
    assert again == right


def test_noise_varies_per_call() -> None:
    outcomes = {_text("sim-noise50", "What is 2+2?", call).endswith("= 4") for call in range(40)}
    assert outcomes == {True, False}


def test_wrong_after_switches_at_the_call() -> None:
    assert _text("sim-wrongafter3", "What is 2+2?", 3).endswith("= 4")
    assert _text("sim-wrongafter3", "What is 2+2?", 4).endswith("= 5")


def test_update_after_changes_fingerprint_and_length() -> None:
    ask = Ask(model="sim-updateafter2", last_user_text="What is 2+2?", prompt_chars=12)
    before = compose(ask, parse_behaviour(ask.model), 2)
    after = compose(ask, parse_behaviour(ask.model), 3)
    assert before.fingerprint is None and after.fingerprint == UPDATED_FINGERPRINT
    assert after.text is not None and after.text.endswith(UPDATED_SUFFIX)
    assert after.completion_tokens > 3 * before.completion_tokens
    assert after.text.split(" Since")[0].endswith("= 4")  # still right


def test_refuse_after_refuses_every_other_call() -> None:
    texts = [_text("sim-refuseafter2", "What is 2+2?", call) for call in range(1, 7)]
    refused = ["I'm sorry" in t for t in texts]
    assert refused == [False, False, False, True, False, True]


GRADE = "## Question\n{q}\n\n## Answer to grade\n{a}\n"
PAIR = "## Question\n{q}\n\n## Answer A\n{a}\n\n## Answer B\n{b}\n"


@pytest.mark.parametrize(
    ("question", "answer", "score"),
    [
        ("What is 2+2?", "[simulated x] 2 + 2 = 4", 10),
        ("What is 2+2?", "[simulated x] 2 + 2 = 5", 0),
        ("What is 2+2?", "[simulated x] I'm sorry, but I can't help with that request.", 0),
        ("Name a colour.", "Blue is a colour.", 7),
    ],
)
def test_simulated_judge_grades(question: str, answer: str, score: int) -> None:
    verdict = orjson.loads(judge_reply(GRADE.format(q=question, a=answer), None))
    assert verdict == {"score": score}


def test_simulated_judge_uses_the_reference_and_compares_pairs() -> None:
    prompt = "## Question\nName the capital of France.\n\n## Reference answer\nParis\n\n"
    prompt += "## Answer to grade\nIt is Paris.\n"
    assert orjson.loads(judge_reply(prompt, None)) == {"score": 10}
    pair = PAIR.format(q="What is 3*3?", a="3 * 3 = 9", b="3 * 3 = 10")
    assert orjson.loads(judge_reply(pair, None)) == {"a": 10, "b": 0}


def test_a_weak_judge_gets_hard_sums_wrong() -> None:
    prompt = GRADE.format(q="What is 12 * 7 + 5 - 3?", a="12 * 7 + 5 - 3 = 86")
    assert orjson.loads(judge_reply(prompt, 2)) == {"score": 0}  # it thinks 87
    assert orjson.loads(judge_reply(prompt, None)) == {"score": 10}


def test_a_model_answers_a_grading_prompt_with_a_verdict() -> None:
    ask = Ask(model="sim-large", last_user_text=GRADE.format(q="What is 6*7?", a="42"))
    answer = compose(ask, Behaviour())
    assert answer.text == '{"score":10}'
