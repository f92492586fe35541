"""Plausible values synthesised from a JSON schema (tool arguments, structured outputs).

Handles the JSON Schema subset that tool and response schemas use in practice: ``type``
(string or list, any case, so Gemini's OpenAPI ``"OBJECT"`` works), ``properties``,
``required``, ``items``, ``enum``, ``const``, ``default``, ``anyOf``/``oneOf``/``allOf``,
local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), numeric bounds, string
``format``/``minLength``/``maxLength`` and array ``minItems``/``maxItems``. The result is
deterministic: the same schema always gives the same value.
"""

from __future__ import annotations

import math
from typing import Any

_MAX_DEPTH = 8

#: Property-name hints for string values, checked in order as substrings of the name.
_STRING_HINTS: tuple[tuple[str, str], ...] = (
    ("email", "ada@example.com"),
    ("url", "https://example.com"),
    ("uri", "https://example.com"),
    ("city", "Paris"),
    ("location", "Paris, France"),
    ("country", "France"),
    ("unit", "celsius"),
    ("date", "2024-01-15"),
    ("time", "12:00"),
    ("phone", "+1-555-0100"),
    ("lang", "en"),
    ("currency", "EUR"),
    ("first_name", "Ada"),
    ("last_name", "Lovelace"),
    ("name", "Ada Lovelace"),
    ("title", "A simulated title"),
    ("query", "simulated query"),
    ("id", "id-123"),
    ("color", "blue"),
    ("status", "active"),
    ("description", "A simulated description."),
)

_FORMATS = {
    "date-time": "2024-01-15T12:00:00Z",
    "date": "2024-01-15",
    "time": "12:00:00",
    "email": "ada@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def synthesise(schema: Any, root: Any = None, name: str = "", all_properties: bool = True) -> Any:
    """A value that validates against ``schema``.

    ``all_properties`` fills every declared property of objects; otherwise only the required
    ones (all of them when none is marked required).
    """
    return _value(schema, root if root is not None else schema, name, 0, all_properties)


def _resolve(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/") or not isinstance(root, dict):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, dict) else {}


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [str(k).lower() for k in kind if str(k).lower() != "null"]
        return kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _value(schema: Any, root: Any, name: str, depth: int, all_properties: bool) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if depth > _MAX_DEPTH else f"simulated {name}".strip()
    for _ in range(4):
        if "$ref" not in schema:
            break
        schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _value((non_null or options)[0], root, name, depth + 1, all_properties)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in all_of:
            part = _resolve(part, root) if isinstance(part, dict) else {}
            for key, value in part.items():
                if key in ("properties",) and isinstance(value, dict):
                    merged.setdefault("properties", {}).update(value)
                elif key == "required" and isinstance(value, list):
                    merged["required"] = list(merged.get("required", [])) + value
                else:
                    merged.setdefault(key, value)
        return _value(merged, root, name, depth + 1, all_properties)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth, all_properties)
    if kind == "array":
        return _array(schema, root, name, depth, all_properties)
    if kind == "integer":
        return int(_number(schema, integer=True))
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _object(schema: dict[str, Any], root: Any, depth: int, all_properties: bool) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    names: list[str]
    if all_properties or not isinstance(required, list) or not required:
        names = list(properties)
    else:
        names = [n for n in required if n in properties]
    return {n: _value(properties[n], root, n, depth + 1, all_properties) for n in names}


def _array(
    schema: dict[str, Any], root: Any, name: str, depth: int, all_properties: bool
) -> list[Any]:
    items = schema.get("items")
    if not isinstance(items, dict):
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [_value(p, root, name, depth + 1, all_properties) for p in prefix]
        return []
    count = 1
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and min_items > count:
        count = min(min_items, 16)
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and max_items < count:
        count = max(max_items, 0)
    item_name = name[:-1] if name.endswith("s") else name
    return [_value(items, root, item_name, depth + 1, all_properties) for _ in range(count)]


def _number(schema: dict[str, Any], integer: bool) -> float:
    value: float = 1 if integer else 1.5
    step = 1 if integer else 0.5
    low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
    ex_low, ex_high = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    if ex_low is not None and value <= ex_low:
        value = math.floor(ex_low) + 1 if integer else ex_low + step
    if high is not None and value > high:
        value = math.floor(high) if integer else high
    if ex_high is not None and value >= ex_high:
        value = math.ceil(ex_high) - 1 if integer else ex_high - step
    return value


def _bound(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    text: str | None = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if text is None:
        lowered = name.lower()
        for hint, example in _STRING_HINTS:
            if hint in lowered:
                text = example
                break
        else:
            text = f"simulated {name}".strip() if name else "simulated"
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[: max(max_len, 0)]
    return text
