"""Fields of a Responses API body that this gateway does not know, by path.

Top-level keys (``foo``) and keys inside ``input`` items and their content parts
(``input.0.foo``, ``input.1.content.0.foo``) that are not part of the Responses shape modelmix
translates. A null, ``[]`` or ``{}`` value is a client library's default and is ignored. They
go to ``ChatRequest.unknown``, where ``wire/extensions.py`` applies the one rule for unknown
fields: a ``provider: openai-responses`` upstream gets the client's body as it is (so they are
in it), any other model follows its ``params.unknown`` (refuse, drop, pass).

``reasoning`` items are opaque (only a Responses upstream reads them): their keys are not
looked into. Only a body that has such fields costs more than one look at each item's size.
"""

from __future__ import annotations

from typing import Any

__all__ = ["unknown_fields"]

_ITEM_KEYS: dict[str, frozenset[str]] = {
    "message": frozenset({"type", "role", "content", "id", "status"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
}
_PART_KEYS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text"}),
    "text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "file_data", "file_id", "filename", "file_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
}
#: Fewest keys an item or part with an unknown field can have (its known ones are fewer).
_SMALL = 2


def _extra(obj: dict[str, Any], known: frozenset[str], path: str, out: dict[str, Any]) -> None:
    for key, value in obj.items():
        if key not in known and value is not None and value != [] and value != {}:
            out[f"{path}.{key}"] = value


def _parts(parts: Any, path: str, out: dict[str, Any]) -> None:
    if not isinstance(parts, list):
        return
    for j, part in enumerate(parts):
        if isinstance(part, dict) and len(part) > _SMALL:
            known = _PART_KEYS.get(str(part.get("type")))
            if known is not None:  # an unsupported part type is refused by the translation
                _extra(part, known, f"{path}.{j}", out)


def _item(item: dict[str, Any], path: str, out: dict[str, Any]) -> None:
    kind = str(item.get("type") or ("message" if "role" in item else ""))
    known = _ITEM_KEYS.get(kind)
    if known is None:  # reasoning (opaque) or a type the translation refuses
        return
    if len(item) > _SMALL:
        _extra(item, known, path, out)
    if kind == "message":
        _parts(item.get("content"), f"{path}.content", out)
    elif kind == "function_call_output":
        _parts(item.get("output"), f"{path}.output", out)


def unknown_fields(
    body: dict[str, Any], items: list[dict[str, Any]], known: frozenset[str]
) -> dict[str, Any] | None:
    """Unknown fields of ``body`` (top-level keys beyond ``known``) and of its ``input``
    ``items``, path -> value; None when there are none."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key not in known and value is not None:
            out[key] = value
    if isinstance(body.get("input"), list):  # a string input has nothing inside
        for i, item in enumerate(items):
            _item(item, f"input.{i}", out)
    return out or None
