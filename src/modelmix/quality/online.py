"""The engine's observer: what the quality loop does with a finished client answer.

``answered`` / ``streamed`` run on the request's own path, right after its ledger record is
handed off, so they only sample and queue: a captured sample is a statement for the writer
thread; a judge or shadow call is a background task (bounded; dropped when too many are in
flight). The client's response is not held up: its bytes are sent as soon as the engine
returns, and the background calls run after that, when the event loop gets to them.

* capture: the prompt, answer, length, refusal and fingerprint go to ``samples``;
* online judge: the judge scores the answer (``judgements``, source ``judge``);
* shadow: the route's candidate answers the same request (a ledger row with
  ``api = "shadow"``); the judge scores both answers side by side (in random order, against
  position bias); both scores land in the eval matrix as run ``shadow:<route>``, and the live
  answer's in ``judgements`` (source ``shadow``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from modelmix.evals import calls
from modelmix.evals import judge as judging
from modelmix.evals.runner import answer_text
from modelmix.evals.store import RESULT_SQL, ResultRow, result_values
from modelmix.ledger.records import RequestRecord
from modelmix.quality.background import BackgroundPool
from modelmix.quality.config import QualityConfig, ShadowConfig
from modelmix.quality.store import CLIENT_APIS, JUDGEMENT_SQL, SAMPLE_SQL
from modelmix.quality.writer import BatchWriter
from modelmix.request_facts import prompt_text
from modelmix.routing.verifiers import is_refusal
from modelmix.types import ChatRequest, ChatResponse, StreamDelta

if TYPE_CHECKING:
    from modelmix.evals.calls import Run

log = logging.getLogger("modelmix.quality")


def shadow_run_id(route: str) -> str:
    return f"shadow:{route}"


class OnlineQuality:
    def __init__(
        self,
        run: Run,
        config: QualityConfig,
        shadows: Mapping[str, ShadowConfig],
        writer: BatchWriter,
        pool: BackgroundPool,
        rng: random.Random | None = None,
    ) -> None:
        self.run = run
        self.config = config
        self.shadows = dict(shadows)
        self.writer = writer
        self.pool = pool
        self.rng = rng or random.Random()
        self.capture_rate = config.capture.sample
        self.max_chars = config.capture.max_chars
        self.judge = config.judge
        self.judge_rate = config.judge.sample if config.judge is not None else 0.0
        self.unusable_verdicts = 0

    @property
    def active(self) -> bool:
        """Whether the engine needs to call this at all."""
        return bool(self.capture_rate or self.judge_rate or self.shadows)

    # -- the engine's hooks ------------------------------------------------------------------

    def answered(self, request: ChatRequest, response: ChatResponse, record: RequestRecord) -> None:
        if record.api not in CLIENT_APIS or record.status != "ok":
            return
        try:
            self._observe(request, answer_text(response), response.system_fingerprint, record)
        except Exception:  # never let the quality loop break a request
            log.exception("quality observer failed on request %s", record.id)

    def streamed(
        self, request: ChatRequest, delivered: list[list[StreamDelta]], record: RequestRecord
    ) -> None:
        if record.api not in CLIENT_APIS or record.status != "ok":
            return
        try:
            text = "".join(d.content for batch in delivered for d in batch if d.content)
            self._observe(request, text, None, record)
        except Exception:
            log.exception("quality observer failed on request %s", record.id)

    def _observe(
        self, request: ChatRequest, text: str, fingerprint: str | None, record: RequestRecord
    ) -> None:
        rand = self.rng.random
        if self.capture_rate and rand() < self.capture_rate:
            self._capture(request, text, fingerprint, record)
        if self.judge_rate and rand() < self.judge_rate:
            self.pool.submit(self.judge_live, request, text, record)
        shadow = self.shadows.get(record.route) if record.route is not None else None
        if shadow is not None and shadow.model != record.final_model and rand() < shadow.sample:
            self.pool.submit(self.shadow, request, text, record, shadow)

    def _capture(
        self, request: ChatRequest, text: str, fingerprint: str | None, record: RequestRecord
    ) -> None:
        messages = orjson.dumps(request.messages).decode()
        if len(messages) > self.max_chars:
            messages = orjson.dumps(
                [
                    {
                        "role": "user",
                        "content": judging.question_text(request.messages)[-self.max_chars :],
                    }
                ]
            ).decode()
        self.writer.write(
            SAMPLE_SQL,
            (
                record.id,
                record.started_at,
                record.route,
                record.final_model,
                record.decision.get("policy_version", record.policy_version),
                messages,
                text[: self.max_chars],
                record.completion_tokens,
                int(is_refusal(text)),
                fingerprint,
            ),
        )

    # -- background work ---------------------------------------------------------------------

    async def call(
        self, request: ChatRequest, api: str, parent: str
    ) -> tuple[ChatResponse | None, RequestRecord]:
        response, record, err = await calls.call(self.run, request, api, parent=parent)
        if err is not None:
            log.info("quality %s call for %s failed: %s", api, parent, err.message)
        return response, record

    async def judge_live(self, request: ChatRequest, text: str, record: RequestRecord) -> None:
        judge = self.judge
        assert judge is not None
        prompt = judging.single_prompt(
            judging.question_text(request.messages), text, None, judge.rubric
        )
        response, _ = await self.call(
            judging.judge_request(judge.model, prompt), "judge", record.id
        )
        score = judging.parse_single(response.content if response else None)
        if score is None:
            self.unusable_verdicts += response is not None
            return
        assert record.final_model is not None
        self.writer.write(
            JUDGEMENT_SQL, (record.id, record.final_model, "judge", judge.model, score, time.time())
        )

    async def shadow(
        self, request: ChatRequest, live_text: str, record: RequestRecord, cfg: ShadowConfig
    ) -> None:
        assert record.route is not None and record.final_model is not None
        route, live_model = record.route, record.final_model
        mirrored = dataclasses.replace(
            request,
            model=cfg.model,
            stream=False,
            include_usage=False,
            metadata={**request.metadata, "modelmix_shadow_of": record.id[:64]},
        )
        response, shadow_record = await self.call(mirrored, "shadow", record.id)
        run_id = shadow_run_id(route)
        now = time.time()
        candidate = ResultRow(
            run_id=run_id,
            item_id=record.id,
            model=cfg.model,
            task=route,
            score=0.0,
            scorer="judge-pair",
            created_at=now,
            cost_usd=shadow_record.cost_usd,
            latency_ms=shadow_record.latency_ms,
            prompt_tokens=shadow_record.prompt_tokens,
            completion_tokens=shadow_record.completion_tokens,
            request_id=shadow_record.id,
            prompt=prompt_text(request.messages),
        )
        if response is None:
            candidate.error = shadow_record.error or "shadow call failed"
            self.writer.write(RESULT_SQL, result_values(candidate))
            return
        judge_model = cfg.judge or (self.judge.model if self.judge else None)
        assert judge_model is not None  # the config requires one
        rubric = self.judge.rubric if self.judge else None
        candidate_text = answer_text(response)
        swap = self.rng.random() < 0.5
        a, b = (candidate_text, live_text) if swap else (live_text, candidate_text)
        question = judging.question_text(request.messages)
        verdict_response, _ = await self.call(
            judging.judge_request(judge_model, judging.pair_prompt(question, a, b, None, rubric)),
            "judge",
            record.id,
        )
        verdict = judging.parse_pair(verdict_response.content if verdict_response else None)
        if verdict is None:
            self.unusable_verdicts += verdict_response is not None
            return
        live_score, candidate_score = (verdict[1], verdict[0]) if swap else verdict
        detail: dict[str, Any] = {"judge": judge_model, "live": live_model, "candidate": cfg.model}
        candidate.score = candidate_score
        candidate.detail = detail
        candidate.answer = candidate_text[: self.max_chars]
        candidate.refusal = is_refusal(candidate_text)
        candidate.system_fingerprint = response.system_fingerprint
        live = ResultRow(
            run_id=run_id,
            item_id=record.id,
            model=live_model,
            task=route,
            score=live_score,
            scorer="judge-pair",
            created_at=now,
            detail=detail,
            answer=live_text[: self.max_chars],
            cost_usd=record.cost_usd,
            latency_ms=record.latency_ms,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            refusal=is_refusal(live_text),
            request_id=record.id,
            prompt=candidate.prompt,
        )
        self.writer.write(RESULT_SQL, result_values(live))
        self.writer.write(RESULT_SQL, result_values(candidate))
        self.writer.write(
            JUDGEMENT_SQL, (record.id, live_model, "shadow", judge_model, live_score, now)
        )
