"""The exploration's ledger side (issue 15, item 4): the candidates' acceptance posteriors, and
promotion of a candidate that beats the default through the canary.

``arm_labels`` sums, per (route, served model), the labels of the route's labelled requests
(``personal/store.py``'s ``labelled_requests``: mean feedback score, else the judge's score).
``Explorer.refresh`` swaps them into the ``Posteriors`` the engine reads.

Promotion (``propose``), for fallback and rules routes (the default is the route's first model)
with ``explore.promote``: when a candidate and the default each have ``min_samples`` labels and
the posterior probability that the candidate's acceptance beats the default's is at least
``confidence`` (normal approximation of the two Betas), a policy version with the candidate
first in the route's models is recorded and started as a canary on ``canary_share`` of the
traffic. The canary's guardrails (``quality/canary.py``) then promote or roll it back; nothing
here changes the live policy. One canary at a time; a version the canary rolled back before is
not proposed again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from modelmix.adaptive.explore import Posteriors
from modelmix.config import RouteConfig
from modelmix.ledger.db import Database, Location
from modelmix.ledger.opening import open_quality_db
from modelmix.personal.store import labelled_requests
from modelmix.quality.policy import routes_document
from modelmix.quality.policy_store import PolicyStore
from modelmix.stats import normal_sf

#: Only labels of the last this many seconds count (30 days).
LOOKBACK_S = 30 * 86400.0
PROMOTABLE = ("fallback", "rules")


def arm_labels(conn: Database, since: float) -> dict[tuple[str, str], tuple[float, int]]:
    """(route, model) -> (sum of labels, labelled requests)."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r, label in labelled_requests(conn, since):
        if r["route"] and r["final_model"]:
            acc = sums[(str(r["route"]), str(r["final_model"]))]
            acc[0] += label
            acc[1] += 1
    return {k: (v[0], int(v[1])) for k, v in sums.items()}


def beats(a: tuple[float, float], b: tuple[float, float]) -> float:
    """P(X > Y) for X ~ Beta(*a), Y ~ Beta(*b), normal approximation."""

    def moments(p: tuple[float, float]) -> tuple[float, float]:
        s = p[0] + p[1]
        return p[0] / s, p[0] * p[1] / (s * s * (s + 1))

    (ma, va), (mb, vb) = moments(a), moments(b)
    return normal_sf((mb - ma) / math.sqrt(va + vb))


def promotion(route: RouteConfig, post: Posteriors) -> dict[str, Any] | None:
    """The candidate of ``route`` whose posterior beats the default's (None: none does)."""
    cfg = route.explore
    if cfg is None or not cfg.promote or route.strategy not in PROMOTABLE or not route.models:
        return None
    default = route.models[0]
    d_beta = post.beta(route.name, default, cfg.prior)
    _, d_n = post.arms.get((route.name, default), (0.0, 0))
    best: dict[str, Any] | None = None
    for cand in cfg.candidates or route.models:
        _, n = post.arms.get((route.name, cand), (0.0, 0))
        if cand == default or n < cfg.min_samples or d_n < cfg.min_samples:
            continue
        c_beta = post.beta(route.name, cand, cfg.prior)
        p = beats(c_beta, d_beta)
        if p >= cfg.confidence and (best is None or p > best["p_better"]):
            best = {
                "route": route.name,
                "candidate": cand,
                "default": default,
                "p_better": round(p, 4),
                "candidate_mean": round(c_beta[0] / sum(c_beta), 4),
                "default_mean": round(d_beta[0] / sum(d_beta), 4),
                "labels": [n, d_n],
            }
    return best


def promoted_routes(routes: Sequence[RouteConfig], route: str, cand: str) -> list[RouteConfig]:
    """``routes`` with ``cand`` first in ``route``'s models (and, for a rules route, its
    default chain)."""
    out = []
    for r in routes:
        if r.name == route:
            models = [cand, *(m for m in r.models if m != cand)]
            r = r.model_copy(update={"models": models})
        out.append(r)
    return out


class Explorer:
    """Posteriors for the engine and promotion proposals for the canary; blocking calls (the
    quality loop runs them in a worker thread)."""

    def __init__(self, location: Location, policies: PolicyStore) -> None:
        self.location = location
        #: Its own connection (the refresh runs in a worker thread), opened on first use.
        self.conn: Database | None = None
        self.policies = policies
        self.posteriors = Posteriors()
        self.last_proposal: dict[str, Any] | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def refresh(self, now: float) -> Posteriors:
        if self.conn is None:
            self.conn = open_quality_db(self.location, check_same_thread=False)
        self.posteriors.arms = arm_labels(self.conn, now - LOOKBACK_S)
        return self.posteriors

    def _rolled_back(self) -> set[str]:
        return {
            e.version
            for e in self.policies.events(limit=500)
            if e.kind == "canary_rollback" and e.version
        }

    def propose(self, routes_of: Callable[[str], list[RouteConfig]]) -> str | None:
        """Start a canary of the first promotion found in the live policy's routes (given by
        ``routes_of(version)``); its version id (None: none, or a canary is running)."""
        state = self.policies.state()
        if state.canary is not None or state.live is None:
            return None
        routes = routes_of(state.live)
        for route in routes:
            found = promotion(route, self.posteriors)
            if found is None:
                continue
            document = routes_document(promoted_routes(routes, route.name, found["candidate"]))
            message = f"explore: {found['candidate']} first on route {route.name}"
            vid = self.policies.add_version(document, message, "explore", parent=state.live)
            if vid in self._rolled_back():
                continue
            share = route.explore.canary_share if route.explore else 0.1
            self.policies.start_canary(vid, share, "session", {"explore": found})
            self.last_proposal = found
            return vid
        return None
