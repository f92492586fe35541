"""Two policy versions side by side: a canary sends a share of a route's traffic to the
candidate version's strategy, the rest to the stable one.

The split is sticky: the request's user or session id (OpenAI ``user``, Anthropic
``metadata.user_id``, or a ``session_id`` / ``session`` / ``user`` metadata tag, as the canary's
``sticky`` setting says) is hashed with the candidate version, so one user stays on one arm for
the whole canary (and a new canary reshuffles). A request without such an id is assigned at
random. Both arms stamp ``decision["policy_version"]`` (the ledger's ``policy_version`` column)
and ``decision["canary"]``, which the canary's guardrails read back. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Plan, Strategy
from modelmix.types import ChatRequest

#: Where a sticky id is looked for, per ``sticky`` setting, in order.
STICKY_FIELDS: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id"),
    "session": ("session_id", "session", "user", "user_id"),
}


def sticky_id(request: ChatRequest, sticky: str) -> str | None:
    """The id a request's arm is keyed on (None: not sticky)."""
    fields = STICKY_FIELDS.get(sticky, STICKY_FIELDS["session"])
    for name in fields:
        value = request.metadata.get(name)
        if value:
            return f"{name}={value}"
        if name == "user":
            user = request.params.get("user")
            if user:
                return f"user={user}"
    return None


def bucket(candidate_version: str, key: str) -> float:
    """A uniform number in [0, 1) from the version and the sticky id."""
    digest = hashlib.sha256(f"{candidate_version}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class VersionedStrategy:
    """A strategy stamped with the policy version it belongs to."""

    def __init__(self, strategy: Strategy, version: str) -> None:
        self.name = strategy.name
        self.strategy = strategy
        self.version = version

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["policy_version"] = self.version
        return (yield from self.strategy.plan(request, needs, decision))


class CanaryStrategy:
    def __init__(
        self,
        name: str,
        stable: Strategy,
        candidate: Strategy,
        *,
        stable_version: str,
        candidate_version: str,
        share: float,
        sticky: str = "session",
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.stable = stable
        self.candidate = candidate
        self.stable_version = stable_version
        self.candidate_version = candidate_version
        self.share = share
        self.sticky = sticky
        self._rng = rng or random.Random()

    def arm(self, request: ChatRequest) -> tuple[bool, bool]:
        """(to the candidate?, was the choice sticky?)."""
        key = sticky_id(request, self.sticky)
        if key is None:
            return self._rng.random() < self.share, False
        return bucket(self.candidate_version, key) < self.share, True

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        to_candidate, sticky = self.arm(request)
        decision["policy_version"] = self.candidate_version if to_candidate else self.stable_version
        decision["canary"] = {
            "arm": "candidate" if to_candidate else "stable",
            "candidate": self.candidate_version,
            "share": self.share,
            "sticky": sticky,
        }
        chosen = self.candidate if to_candidate else self.stable
        return (yield from chosen.plan(request, needs, decision))
