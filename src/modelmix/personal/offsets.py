"""The personal offsets in memory, and their use on the hot path (one dict lookup per request).

``Offsets.lookup`` finds the request's most specific subject with an offset (user, key, team,
tag); an empty table costs one truth test. ``personalise`` shifts the learned router's P(good)
per candidate by that subject's offset on the log-odds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelmix.personal.estimator import shifted


class Offsets:
    """Subject -> offset on the log-odds of P(good), swapped whole on refresh."""

    __slots__ = ("by_subject",)

    def __init__(self, by_subject: dict[str, float] | None = None) -> None:
        self.by_subject: dict[str, float] = by_subject or {}

    def lookup(
        self, key_id: str | None, team: str | None, tags: Sequence[str]
    ) -> tuple[str, float] | None:
        """(subject, offset) of the request's most specific subject with one."""
        table = self.by_subject
        if not table:
            return None
        for tag in tags:
            if tag.startswith("user:") and tag in table:
                return tag, table[tag]
        for subject in (f"key:{key_id}" if key_id else "", f"team:{team}" if team else ""):
            if subject and subject in table:
                return subject, table[subject]
        for tag in tags:
            subject = f"tag:{tag}"
            if subject in table:
                return subject, table[subject]
        return None


def personalise(
    p: list[float], found: tuple[str, float] | None, decision: dict[str, Any]
) -> list[float]:
    """``p`` as the request's subject accepts it, noted in the decision."""
    if found is None:
        return p
    subject, d = found
    decision["personal"] = {"subject": subject, "offset": round(d, 4)}
    return shifted(p, d)
