"""Unknown fields by path: where a client's field sits in its body, and putting it back there.

A field modelmix does not know may sit at the top of a request (``verbosity``) or inside it (a
key of a message, of a content part, of a tool call: ``messages.1.content.0.foo``). Parsers
record each one in ``ChatRequest.unknown`` under its path: dotted, list indexes as numbers, a
top-level key as itself. ``insert`` puts a field back at its place in an outgoing body of the
same shape (the client's wire format): messages, parts and tool calls are translated one to
one there, so the indexes still hold.

Pure and only used once a request has unknown fields: an ordinary request never comes here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["insert", "insert_all", "is_nested", "nested_path"]


def nested_path(*parts: str | int) -> str:
    """The path of a nested field: ``nested_path("messages", 1, "foo")`` is ``messages.1.foo``."""
    return ".".join(str(p) for p in parts)


def is_nested(path: str, body: dict[str, Any] | None = None) -> bool:
    """``path`` names a field inside the request, not a top-level key (a top-level key with a
    dot in its name, present in ``body``, is top-level)."""
    return "." in path and (body is None or path not in body)


def _step(node: Any, segment: str) -> Any:
    if isinstance(node, dict):
        return node.get(segment)
    if isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
        return node[int(segment)]
    return None


def insert(body: dict[str, Any], path: str, value: Any) -> bool:
    """Set the field at ``path`` in ``body``; False (nothing changed) when the object that
    should hold it is not there."""
    *parents, key = path.split(".")
    node: Any = body
    for segment in parents:
        node = _step(node, segment)
        if node is None:
            return False
    if not isinstance(node, dict):
        return False
    node[key] = value
    return True


def insert_all(body: dict[str, Any], unknown: dict[str, Any], top: dict[str, Any]) -> list[str]:
    """Put every field of ``unknown`` back into ``body``; ``top`` is the client's body (it tells
    a top-level key with a dot in its name from a nested path). The paths that found no place
    are returned (none when ``body`` has the client's shape)."""
    missed: list[str] = []
    for path, value in unknown.items():
        if not is_nested(path, top):
            body[path] = value
        elif not insert(body, path, value):
            missed.append(path)
    return missed
