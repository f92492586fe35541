"""One call through the gateway on the quality loop's behalf (evals, probes, judge, shadow).

Exactly what a client request goes through, budgets included: admission (allowed models, rate
limits, budget reservation; a refusal is this call's error, so background work stops when a
budget is spent), the engine, settlement. The ledger row's ``api`` says whose call it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmix.engine import finish_record
from modelmix.errors import GatewayError
from modelmix.ledger.records import RequestRecord
from modelmix.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from modelmix.gateway import Gateway


async def call(
    gateway: Gateway, request: ChatRequest, api: str, *, parent: str | None = None
) -> tuple[ChatResponse | None, RequestRecord, GatewayError | None]:
    """(response, its ledger record, None) or (None, the record, the error)."""
    request.stream = False
    record = gateway.new_record(api, request)
    if parent is not None:
        record.metadata["modelmix_parent"] = parent[:64]
    try:
        admission = gateway.admit(request, record, None)
    except GatewayError as err:
        finish_record(record, err)
        gateway.emit(record)
        return None, record, err
    try:
        response = await gateway.engine.complete(request, record, admission)
    except GatewayError as err:
        return None, record, err
    finally:
        gateway.accounting.abandon(record)
    return response, record, None
