from __future__ import annotations

from pathlib import Path

import pytest

from modelmix.evals.dataset import (
    EvalDataError,
    ExactScorer,
    JudgeScorer,
    NumericScorer,
    load_dataset,
    parse_items,
)


def _lines(*rows: str) -> list[bytes]:
    return [r.encode() for r in rows]


def test_items_and_default_scorers() -> None:
    items = parse_items(
        _lines(
            '{"id": "a", "prompt": "What is 2+2?", "reference": 4}',
            '{"id": "b", "task": "facts", "prompt": "Capital?", "reference": "Paris"}',
            "",
            '{"id": "c", "messages": [{"role": "user", "content": "Write a haiku"}]}',
            '{"id": "d", "prompt": "x", "scorer": "exact"}',
        ),
        "t.jsonl",
    )
    assert [i.id for i in items] == ["a", "b", "c", "d"]
    assert isinstance(items[0].scorer_spec(), NumericScorer)
    assert isinstance(items[1].scorer_spec(), ExactScorer) and items[1].task == "facts"
    assert isinstance(items[2].scorer_spec(), JudgeScorer)
    assert items[2].chat_messages() == [{"role": "user", "content": "Write a haiku"}]
    assert items[0].chat_messages() == [{"role": "user", "content": "What is 2+2?"}]


def test_errors_name_the_line_and_the_field() -> None:
    with pytest.raises(EvalDataError) as info:
        parse_items(
            _lines(
                '{"id": "a", "prompt": "p", "scorer": {"type": "regex", "patern": "x"}}',
                '{"id": "b", "prompt": "p", "params": {"temprature": 1}}',
                "not json",
                '{"id": "c", "prompt": "p", "messages": []}',
                '{"id": "d", "prompt": "p", "scorer": "bleu"}',
                '{"id": "e", "prompt": "p"}',
                '{"id": "e", "prompt": "p"}',
                '{"id": "f", "prompt": "p", "scorer": {"type": "python", "function": "nocolon"}}',
            ),
            "t.jsonl",
        )
    errors = info.value.errors
    assert "t.jsonl:1: scorer.patern: unknown key" in errors
    assert "t.jsonl:1: scorer.pattern: Field required" in errors
    assert any(e.startswith("t.jsonl:2: params: unknown parameter(s) temprature") for e in errors)
    assert any(e.startswith("t.jsonl:3: not JSON") for e in errors)
    assert "t.jsonl:4: give exactly one of prompt and messages" in errors
    assert any(e.startswith("t.jsonl:5: scorer: unknown scorer 'bleu'") for e in errors)
    assert "t.jsonl:7: id: 'e' is used twice" in errors
    assert any(e.startswith("t.jsonl:8: scorer.function:") for e in errors)


def test_load_dataset_hashes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "prompt": "What is 1+1?", "reference": 2}\n')
    first = load_dataset(path)
    assert len(first) == 1 and first.tasks == ["default"] and len(first.hash) == 16
    path.write_text('{"id": "a", "prompt": "What is 1+2?", "reference": 3}\n')
    assert load_dataset(path).hash != first.hash
    with pytest.raises(EvalDataError, match="cannot read"):
        load_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(EvalDataError, match="no items"):
        load_dataset(tmp_path / "empty.jsonl")


def test_the_shipped_datasets_load() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "evals"
    demo = load_dataset(root / "demo.jsonl")
    assert demo.tasks == ["add", "estimate", "json", "long", "mixed", "words"]
    assert len(load_dataset(root / "golden.jsonl")) == 10
