"""Eval datasets: JSONL, one item per line, validated like the config (errors name the line and
the dotted path of the bad field).

```json
{"id": "add-1", "task": "arithmetic", "prompt": "What is 17 + 25?", "reference": 42,
 "scorer": "numeric"}
{"id": "cap-1", "task": "facts", "messages": [{"role": "user", "content": "Capital of France?"}],
 "reference": "Paris", "scorer": {"type": "regex", "pattern": "(?i)paris"}}
{"id": "json-1", "task": "json", "prompt": "Give me a user.",
 "response_format": {"type": "json_schema", "json_schema": {"name": "u", "schema": {...}}},
 "scorer": {"type": "json_schema", "schema": {...}}}
{"id": "open-1", "task": "writing", "prompt": "Explain DNS in one line.",
 "scorer": {"type": "judge", "rubric": "Correct and one line."}}
```

Scorers (``type``): ``exact`` (normalised text, or an extracted part of it), ``regex``,
``json_schema``, ``numeric`` (the answer's last number within a tolerance), ``python``
(``"module:function"``) and ``judge`` (an LLM scores the answer against a rubric). A string is
shorthand for ``{"type": ...}``. Without a scorer: ``numeric`` for a numeric reference,
``exact`` for any other reference, ``judge`` without one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelmix.types import SAMPLING_PARAMS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: What part of an answer ``exact`` compares: all of it, its last line, its last number, a
#: JSON field (``json:answer``), or the first group of a regex (``re:...``).
Extract = str


class ExactScorer(_Strict):
    type: Literal["exact"] = "exact"
    extract: Extract = "full"
    case_sensitive: bool = False


class RegexScorer(_Strict):
    type: Literal["regex"] = "regex"
    #: Python regex searched in the answer: 1 when found.
    pattern: str
    #: 0 when found instead (e.g. a forbidden phrase).
    negate: bool = False


class JsonSchemaScorer(_Strict):
    type: Literal["json_schema"] = "json_schema"
    #: The JSON Schema the answer's JSON must satisfy (draft 2020-12).
    schema_: dict[str, Any] = Field(alias="schema")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NumericScorer(_Strict):
    type: Literal["numeric"] = "numeric"
    #: Absolute tolerance.
    tolerance: float = Field(default=1e-6, ge=0)
    #: Relative tolerance (share of the reference).
    rel_tolerance: float = Field(default=0.0, ge=0)
    extract: Extract = "last_number"


class PythonScorer(_Strict):
    type: Literal["python"] = "python"
    #: ``package.module:function``, called as ``function(answer, item)``; returns a bool, a
    #: number in [0, 1], or ``(score, detail_dict)``.
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class JudgeScorer(_Strict):
    type: Literal["judge"] = "judge"
    #: The judge model (default: ``modelmix eval run --judge``).
    model: str | None = None
    rubric: str | None = None


ScorerSpec = Annotated[
    ExactScorer | RegexScorer | JsonSchemaScorer | NumericScorer | PythonScorer | JudgeScorer,
    Field(discriminator="type"),
]
SCORER_TYPES = ("exact", "regex", "json_schema", "numeric", "python", "judge")


class EvalItem(_Strict):
    id: str = Field(min_length=1, max_length=200)
    task: str = Field(default="default", min_length=1, max_length=100)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    reference: Any = None
    scorer: ScorerSpec | None = None
    #: Sampling parameters sent with the prompt (``max_tokens``, ``temperature``...).
    params: dict[str, Any] = Field(default_factory=dict)
    response_format: dict[str, Any] | None = None

    @field_validator("scorer", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in SCORER_TYPES:
                raise ValueError(f"unknown scorer {value!r}; known: {', '.join(SCORER_TYPES)}")
            return {"type": value}
        return value

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(SAMPLING_PARAMS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")
        return value

    def chat_messages(self) -> list[dict[str, Any]]:
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]

    def question(self) -> str:
        """The prompt as text (for a judge)."""
        if self.prompt is not None:
            return self.prompt
        parts = []
        for m in self.messages or []:
            content = m.get("content")
            if isinstance(content, str):
                parts.append(f"{m.get('role', 'user')}: {content}")
        return "\n".join(parts)

    def scorer_spec(
        self,
    ) -> (
        ExactScorer | RegexScorer | JsonSchemaScorer | NumericScorer | (PythonScorer | JudgeScorer)
    ):
        if self.scorer is not None:
            return self.scorer
        if isinstance(self.reference, int | float) and not isinstance(self.reference, bool):
            return NumericScorer()
        if self.reference is not None:
            return ExactScorer()
        return JudgeScorer()


class EvalDataError(ValueError):
    """A dataset that cannot be used; ``errors`` are ``file:line: path: message`` lines."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True, slots=True)
class Dataset:
    path: str
    items: list[EvalItem]
    #: SHA-256 (16 hex digits) of the file's bytes: a run refuses a different dataset.
    hash: str

    def __iter__(self) -> Iterator[EvalItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def tasks(self) -> list[str]:
        return sorted({item.task for item in self.items})


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_items(lines: list[bytes], source: str) -> list[EvalItem]:
    items: list[EvalItem] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            errors.append(f"{where}: not JSON ({exc})")
            continue
        if not isinstance(data, dict):
            errors.append(f"{where}: each line must hold a JSON object")
            continue
        try:
            item = EvalItem.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                # the discriminated union adds the scorer type to the path: drop it
                loc = tuple(p for p in err["loc"] if p not in SCORER_TYPES)
                msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"])
                errors.append(
                    f"{where}: {_dotted(loc) or '(item)'}: {msg.removeprefix('Value error, ')}"
                )
            continue
        if (item.prompt is None) == (item.messages is None):
            errors.append(f"{where}: give exactly one of prompt and messages")
            continue
        if item.id in seen:
            errors.append(f"{where}: id: {item.id!r} is used twice")
            continue
        seen.add(item.id)
        items.append(item)
    if errors:
        raise EvalDataError(errors)
    if not items:
        raise EvalDataError([f"{source}: no items"])
    return items


def load_dataset(path: str | Path) -> Dataset:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise EvalDataError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    items = parse_items(raw.splitlines(), str(p))
    return Dataset(str(p), items, hashlib.sha256(raw).hexdigest()[:16])
