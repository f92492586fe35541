"""Which of a request's tags a key may have counted against tag budgets (issue 14, finding 3).

A request names tags itself (``metadata``, ``x-modelmix-tag-*`` headers, ``user``), so without
a scope any key could spend from any tag's budget: a key sending ``project: atlas`` could drain
``project:atlas`` and lock out the team that owns it. The tags a key may set are part of the
key: its own ``tags`` (fixed: on every request it makes) and its ``allowed_tags`` (``*``
wildcards, e.g. ``project:*``). A request tag that has a tag budget and that the key may not set
is dropped from the request's spend attribution (``record.tags``, which is what tag budgets,
reports and a restart's spend reload count), and listed in the ledger decision as
``tags_not_allowed``; the request itself goes on, and its metadata is kept as sent. Tags without
a budget are attributed as before. The admin key and anonymous callers (keyless mode) are not
scoped. One set look-up per tag, only when tag budgets exist.
"""

from __future__ import annotations

from collections.abc import Set
from fnmatch import fnmatchcase

from modelmix.ledger.keys import KeyInfo
from modelmix.ledger.records import RequestRecord

__all__ = ["scoped_tags"]


def _may_set(key: KeyInfo, tag: str) -> bool:
    return tag in key.tags or any(fnmatchcase(tag, p) for p in key.allowed_tags)


def scoped_tags(
    key: KeyInfo, tags: tuple[str, ...], budgeted: Set[str], record: RequestRecord
) -> tuple[str, ...]:
    """``tags`` without the budgeted ones ``key`` may not set (noted on ``record``)."""
    refused = [t for t in tags if t in budgeted and not _may_set(key, t)]
    if not refused:
        return tags
    record.decision["tags_not_allowed"] = refused
    return tuple(t for t in tags if t not in refused)
