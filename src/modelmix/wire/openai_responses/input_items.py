"""``GET /v1/responses/{id}/input_items``: a stored response's input items as OpenAI lists them.

The page is ``{"object": "list", "data": [...], "first_id", "last_id", "has_more"}``; the query
takes ``limit`` (1 to 100, default 20), ``order`` (``asc`` or ``desc``, the default: newest
first) and ``after`` (an item id: the page starts after it). Anything else in the query is
ignored (``include``: the items are returned whole). Bad values are 400s naming the parameter.

Items carry an ``id`` as OpenAI's do: the client's own where it sent one, else one derived from
the response id and the item's position (stable, so ``after`` works across calls). A message
item is returned in its full form (``type``, ``status``, ``content`` as a list of parts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelmix.errors import GatewayError

__all__ = ["PageQuery", "input_items_page", "parse_page_query"]

_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int = _DEFAULT_LIMIT
    order: str = "desc"
    after: str | None = None


def _invalid(param: str, message: str) -> GatewayError:
    return GatewayError(
        "invalid_request", f"Invalid '{param}': {message}", param=param, code="invalid_value"
    )


def parse_page_query(query: Mapping[str, str]) -> PageQuery:
    """The page asked for by a request's query string; 400 for a bad ``limit`` or ``order``."""
    limit = _DEFAULT_LIMIT
    raw = query.get("limit")
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise _invalid("limit", f"expected an integer, but got '{raw}'.") from None
        if not 1 <= limit <= _MAX_LIMIT:
            raise _invalid("limit", f"expected a value from 1 to {_MAX_LIMIT}, but got {limit}.")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise _invalid("order", f"expected 'asc' or 'desc', but got '{order}'.")
    after = query.get("after") or None
    return PageQuery(limit=limit, order=order, after=after)


def _content(content: Any, role: Any) -> Any:
    if not isinstance(content, str):
        return content
    if role == "assistant":
        return [{"type": "output_text", "text": content, "annotations": []}]
    return [{"type": "input_text", "text": content}]


def _listed(item: dict[str, Any], response_id: str, index: int) -> dict[str, Any]:
    """An input item as OpenAI lists it (with an id, a message in its full form)."""
    kind = item.get("type") or ("message" if "role" in item else "item")
    out = dict(item)
    if not isinstance(out.get("id"), str):
        suffix = response_id.removeprefix("resp_")
        out = {"id": f"{_PREFIX.get(kind, 'item')}_{suffix}_{index}", **out}
    out["type"] = kind
    if kind == "message":
        out["content"] = _content(item.get("content"), item.get("role"))
    if kind != "reasoning" and out.get("status") is None:
        out["status"] = "completed"
    return out


def input_items_page(
    items: list[dict[str, Any]], response_id: str, query: PageQuery
) -> dict[str, Any]:
    """One page of ``items`` (a stored response's input, in the order it was sent)."""
    listed = [_listed(item, response_id, i) for i, item in enumerate(items)]
    if query.order == "desc":
        listed.reverse()
    start = 0
    if query.after is not None:
        ids = [item["id"] for item in listed]
        if query.after not in ids:
            raise _invalid("after", f"no input item with id '{query.after}' in this response.")
        start = ids.index(query.after) + 1
    data = listed[start : start + query.limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + query.limit < len(listed),
    }
