"""Fields of a Responses API body that this gateway does not know, by path.

Top-level keys (``foo``) and keys inside ``input`` items and their content parts
(``input.0.foo``, ``input.1.content.0.foo``) that are not part of the Responses shape modelmix
translates. A null, ``[]`` or ``{}`` value is a client library's default and is ignored. They
go to ``ChatRequest.unknown``, where ``wire/extensions.py`` applies the one rule for unknown
fields: a ``provider: openai-responses`` upstream gets the client's body as it is (so they are
in it), any other model follows its ``params.unknown`` (refuse, drop, pass).

``reasoning`` items are opaque (only a Responses upstream reads them): their keys are not
looked into. The translation (``request.items_to_messages``) looks for them as it reads each
item and part: one subset test of its keys (in C); only one with an unknown key is looked at
key by key. Stored history items are not looked into again.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ITEM_KEYS", "PART_KEYS", "extra_keys", "top_level"]

ITEM_KEYS: dict[str, frozenset[str]] = {
    "message": frozenset({"type", "role", "content", "id", "status"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
}
PART_KEYS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text"}),
    "text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "file_data", "file_id", "filename", "file_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
}


def extra_keys(obj: dict[str, Any], known: frozenset[str], param: str, out: dict[str, Any]) -> None:
    """Keys of ``obj`` beyond ``known`` with a value go to ``out`` by dotted path (``param``
    is OpenAI's ``input[0].content[1]``: ``input.0.content.1.<key>``)."""
    path = param.replace("[", ".").replace("]", "")
    for key, value in obj.items():
        if key not in known and value is not None and value != [] and value != {}:
            out[f"{path}.{key}"] = value


def top_level(body: dict[str, Any], known: frozenset[str]) -> dict[str, Any] | None:
    """The top-level keys of ``body`` beyond ``known`` with a value; None when there are none."""
    if known.issuperset(body):  # the usual case: one look, in C
        return None
    out = {key: value for key, value in body.items() if key not in known and value is not None}
    return out or None
