"""One call through the gateway on the quality loop's behalf (evals, probes, judge, shadow).

It goes through the gateway's one request lifecycle (``Gateway.run``), exactly what a client
request goes through, budgets included: admission (allowed models, rate limits, budget
reservation; a refusal is this call's error, so background work stops when a budget is spent),
the engine, settlement. The ledger row's ``api`` says whose call it was. The callers hold only
``Run`` (the lifecycle function), never the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from modelmix.engine import EngineStream
from modelmix.errors import GatewayError
from modelmix.ledger.records import RequestRecord
from modelmix.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from modelmix.gateway import Result


class Run(Protocol):
    """The gateway's request lifecycle (``Gateway.run``)."""

    def __call__(
        self, request: ChatRequest, *, api: str, parent: str | None = None
    ) -> Awaitable[Result | EngineStream]: ...


async def call(
    run: Run, request: ChatRequest, api: str, *, parent: str | None = None
) -> tuple[ChatResponse | None, RequestRecord, GatewayError | None]:
    """(response, its ledger record, None) or (None, the record, the error)."""
    request.stream = False
    try:
        result = await run(request, api=api, parent=parent)
    except GatewayError as err:
        assert err.record is not None  # Gateway.run records every failure
        return None, err.record, err
    assert not isinstance(result, EngineStream)  # request.stream is False
    return result.response, result.record, None
