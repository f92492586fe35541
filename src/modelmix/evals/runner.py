"""Run a dataset through models via the gateway's own engine, and score every answer.

Calls go through ``Gateway.run`` like any client request (admission, routing, retries,
fallbacks, prices, the ledger: eval calls are ledger rows with ``api = "eval"``, judge calls
``api = "judge"``), so an eval measures what clients would get. Each (item, model) result is
committed as soon as it is scored: an interrupted run keeps what it did, and running it again
only does the rest. A rich progress bar shows progress when asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from modelmix.evals import calls
from modelmix.evals import judge as judging
from modelmix.evals.dataset import Dataset, EvalItem
from modelmix.evals.matrix import cells_of
from modelmix.evals.scorers import Score, ScorerError, score
from modelmix.evals.store import Cell, EvalStore, ResultRow
from modelmix.request_facts import prompt_text
from modelmix.routing.verifiers import is_refusal
from modelmix.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from rich.progress import Progress

    from modelmix.evals.calls import Run


@dataclass(slots=True)
class RunSummary:
    run_id: str
    done: int = 0
    skipped: int = 0
    errors: int = 0
    cells: list[Cell] = field(default_factory=list)
    judge_cost: Decimal = Decimal(0)


def answer_text(response: ChatResponse) -> str:
    """What a scorer sees: the text, or the tool calls as JSON when there is no text."""
    if response.content:
        return response.content
    if response.tool_calls:
        calls = [{"name": c.name, "arguments": c.arguments} for c in response.tool_calls]
        return orjson.dumps(calls).decode()
    return ""


class EvalRunner:
    def __init__(
        self,
        run: Run,
        store: EvalStore,
        *,
        concurrency: int = 4,
        judge: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.run_request = run
        self.store = store
        self.concurrency = max(1, concurrency)
        self.judge = judge
        self.progress = progress

    async def call(self, request: ChatRequest, api: str) -> tuple[ChatResponse | None, Any, str]:
        """(response or None, its ledger record, error message or "")."""
        response, record, err = await calls.call(self.run_request, request, api)
        if err is not None:
            return None, record, f"{err.code or err.kind}: {err.message}"
        return response, record, ""

    async def judge_call(self, model: str, prompt: str, costs: list[Decimal]) -> str | None:
        response, record, _ = await self.call(judging.judge_request(model, prompt), "judge")
        costs.append(record.cost_usd)
        return response.content if response is not None else None

    async def one(self, run_id: str, item: EvalItem, model: str, api: str = "eval") -> ResultRow:
        request = ChatRequest(
            model=model,
            messages=item.chat_messages(),
            params=dict(item.params),
            response_format=item.response_format,
            metadata={"modelmix_eval": run_id, "modelmix_item": item.id[:64]},
        )
        response, record, error = await self.call(request, api)
        row = ResultRow(
            run_id=run_id,
            item_id=item.id,
            model=model,
            task=item.task,
            score=0.0,
            scorer=item.scorer_spec().type,
            created_at=time.time(),
            cost_usd=record.cost_usd,
            latency_ms=record.latency_ms,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            request_id=record.id,
            prompt=prompt_text(request.messages),
        )
        if response is None:
            row.error = error[:500]
            row.detail = {}
            return row
        text = answer_text(response)
        row.answer = text[:20_000]
        row.refusal = is_refusal(response.content) and not response.tool_calls
        row.system_fingerprint = response.system_fingerprint
        judge_costs: list[Decimal] = []

        async def call_judge(judge_model: str, prompt: str) -> str | None:
            return await self.judge_call(judge_model, prompt, judge_costs)

        try:
            result: Score = await score(item, text, call_judge, self.judge)
        except ScorerError as exc:
            row.error = f"scorer: {exc}"[:500]
            row.detail = {}
            return row
        row.score = result.value
        row.detail = result.detail
        if judge_costs:
            row.detail["judge_cost_usd"] = format(sum(judge_costs, Decimal(0)), "f")
        return row

    async def run(
        self,
        run_id: str,
        dataset: Dataset,
        models: Sequence[str],
        *,
        kind: str = "eval",
        settings: dict[str, Any] | None = None,
    ) -> RunSummary:
        self.store.open_run(
            run_id,
            kind=kind,
            dataset=dataset.path,
            dataset_hash=dataset.hash,
            models=models,
            settings={"judge": self.judge, **(settings or {})},
        )
        done = self.store.done(run_id)
        pending = [(i, m) for m in models for i in dataset if (i.id, m) not in done]
        summary = RunSummary(run_id, skipped=len(dataset) * len(models) - len(pending))
        bar = None
        if self.progress is not None:
            bar = self.progress.add_task(f"eval {run_id}", total=len(pending))
        gate = asyncio.Semaphore(self.concurrency)

        async def work(item: EvalItem, model: str) -> None:
            async with gate:
                row = await self.one(run_id, item, model, kind)
            self.store.put_results([row])  # committed now: a rerun skips it
            summary.done += 1
            summary.errors += row.error is not None
            if row.detail and "judge_cost_usd" in row.detail:
                summary.judge_cost += Decimal(row.detail["judge_cost_usd"])
            if self.progress is not None and bar is not None:
                self.progress.advance(bar)

        status = "interrupted"
        try:
            await asyncio.gather(*(work(i, m) for i, m in pending))
            status = "done"
        finally:
            summary.cells = cells_of(run_id, self.store.results(run_id))
            self.store.save_cells(run_id, summary.cells)
            self.store.finish_run(run_id, status)
        return summary
