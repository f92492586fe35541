"""Logged traffic with known outcomes: what offline replay and retraining learn from.

A logged request is a captured client request (``samples``: its messages and answer) with its
ledger row (route, the model that answered, tokens, cost) and every outcome known for it:

* the answering model's quality: the mean client feedback score if any (a person's verdict
  wins), else the judge's score (online judge or shadow comparison);
* other models' quality, cost, answer and length, where shadow traffic mirrored the request
  to them (``eval_results`` of the ``shadow:<route>`` runs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from modelmix.quality.store import CLIENT_APIS, QualityStore
from modelmix.request_facts import prompt_text


@dataclass(slots=True)
class LoggedRequest:
    id: str
    started_at: float
    route: str | None
    requested_model: str
    served: str
    policy_version: str | None
    messages: list[dict[str, Any]]
    prompt_tokens: int
    #: Per model (the answering one and any shadow): what is known.
    quality: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    completion_tokens: dict[str, int] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    #: Where the answering model's quality came from: feedback, judge, or None.
    label_source: str | None = None

    @property
    def prompt(self) -> str:
        return prompt_text(self.messages)


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def load_traffic(
    store: QualityStore, since: float = 0.0, route: str | None = None, limit: int = 100_000
) -> list[LoggedRequest]:
    marks = ", ".join("?" * len(CLIENT_APIS))
    sql = (
        "SELECT r.id, r.started_at, r.route, r.requested_model, r.final_model, "
        "r.policy_version, r.prompt_tokens, r.completion_tokens, r.cost_usd, "
        "s.messages, s.answer FROM samples s JOIN requests r ON r.id = s.request_id "
        f"WHERE r.api IN ({marks}) AND r.status = 'ok' AND r.final_model IS NOT NULL "
        "AND r.started_at >= ?"
    )
    args: list[Any] = [*CLIENT_APIS, since]
    if route is not None:
        sql += " AND r.route = ?"
        args.append(route)
    sql += " ORDER BY r.started_at LIMIT ?"
    args.append(limit)
    out: dict[str, LoggedRequest] = {}
    for r in store.query(sql, args):
        req = LoggedRequest(
            id=r["id"],
            started_at=r["started_at"],
            route=r["route"],
            requested_model=r["requested_model"],
            served=r["final_model"],
            policy_version=r["policy_version"],
            messages=orjson.loads(r["messages"]),
            prompt_tokens=r["prompt_tokens"],
        )
        req.cost[req.served] = float(Decimal(r["cost_usd"]))
        req.completion_tokens[req.served] = r["completion_tokens"]
        if r["answer"] is not None:
            req.answers[req.served] = r["answer"]
        out[req.id] = req
    ids = list(out)
    feedback: dict[str, list[float]] = defaultdict(list)
    judged: dict[tuple[str, str], list[float]] = defaultdict(list)
    for chunk in _chunks(ids):
        q = ", ".join("?" * len(chunk))
        for f in store.query(
            "SELECT request_id, score FROM feedback "
            f"WHERE score IS NOT NULL AND request_id IN ({q})",
            chunk,
        ):
            feedback[f["request_id"]].append(f["score"])
        for j in store.query(
            f"SELECT request_id, model, score FROM judgements WHERE request_id IN ({q})", chunk
        ):
            judged[(j["request_id"], j["model"])].append(j["score"])
        for e in store.query(
            "SELECT item_id, model, score, cost_usd, completion_tokens, answer, error "
            f"FROM eval_results WHERE run_id LIKE 'shadow:%' AND item_id IN ({q})",
            chunk,
        ):
            req = out[e["item_id"]]
            model = e["model"]
            if model == req.served or e["error"] is not None:
                continue
            req.quality[model] = e["score"]
            if e["cost_usd"] is not None:
                req.cost[model] = float(Decimal(e["cost_usd"]))
            if e["completion_tokens"] is not None:
                req.completion_tokens[model] = e["completion_tokens"]
            if e["answer"] is not None:
                req.answers[model] = e["answer"]
    for req in out.values():
        if feedback.get(req.id):
            values = feedback[req.id]
            req.quality[req.served] = sum(values) / len(values)
            req.label_source = "feedback"
        elif judged.get((req.id, req.served)):
            values = judged[(req.id, req.served)]
            req.quality[req.served] = sum(values) / len(values)
            req.label_source = "judge"
    return list(out.values())
