"""Each format's vocabulary is one table read both ways: what one side writes, the other reads
back as the same canonical value."""

from __future__ import annotations

from typing import get_args

import orjson
import pytest

from modelmix.errors import STATUS_BY_KIND, GatewayError, UpstreamError
from modelmix.providers.base import SSEEvent
from modelmix.types import FinishReason
from modelmix.wire.anthropic_messages import vocabulary as anthropic
from modelmix.wire.anthropic_messages.client import render_error as anthropic_error
from modelmix.wire.anthropic_messages.upstream import ADAPTER as ANTHROPIC
from modelmix.wire.common import both_ways
from modelmix.wire.gemini import vocabulary as gemini
from modelmix.wire.gemini.upstream import ADAPTER as GEMINI
from modelmix.wire.openai_chat import vocabulary as openai

CANONICAL: tuple[FinishReason, ...] = get_args(FinishReason)


def test_both_ways_keeps_the_first_row_in_each_direction() -> None:
    forward, backward = both_ways((("a", 1), ("b", 1), ("a", 2)))
    assert forward == {"a": 1, "b": 1}
    assert backward == {1: "a", 2: "a"}


@pytest.mark.parametrize("reason", CANONICAL)
def test_a_written_finish_reason_reads_back_as_itself(reason: FinishReason) -> None:
    assert openai.FINISH_REASON[openai.WIRE_FINISH[reason]] == reason
    assert anthropic.FINISH_REASON[anthropic.STOP_REASON[reason]] == reason
    # Gemini has no finish reason of its own for tool calls: STOP, told apart by the parts.
    expected = "stop" if reason == "tool_calls" else reason
    assert gemini.FINISH_REASON[gemini.WIRE_FINISH[reason]] == expected


def test_every_gateway_error_kind_has_a_type_in_each_client_format() -> None:
    assert set(openai.ERROR_TYPES) == set(STATUS_BY_KIND)
    assert set(anthropic.TYPE_FOR_KIND) == set(STATUS_BY_KIND)


@pytest.mark.parametrize("kind", sorted(STATUS_BY_KIND))
def test_an_anthropic_error_the_gateway_writes_reads_back_with_the_tables_kind(kind: str) -> None:
    body = anthropic_error(GatewayError(kind, "boom"))  # type: ignore[arg-type]
    wire_type = orjson.loads(body)["error"]["type"]
    assert wire_type == anthropic.TYPE_FOR_KIND[kind]
    # The upstream side reads an error event in a stream through the same table.
    parser = ANTHROPIC.stream_parser()
    with pytest.raises(UpstreamError) as info:
        parser.feed(SSEEvent(event="error", data=body.decode()))
    assert info.value.kind == anthropic.ERROR_KIND[wire_type]


@pytest.mark.parametrize(("name", "http", "kind"), gemini.ERROR_STATUSES)
def test_a_gemini_error_status_reads_as_its_rows_kind(name: str, http: int, kind: str) -> None:
    # An error inside a 200 body is classified by its status name (an HTTP error by its status).
    body = orjson.dumps({"error": {"code": http, "message": "boom", "status": name}})
    with pytest.raises(UpstreamError) as info:
        GEMINI.parse_response(body)
    assert info.value.kind == kind
    assert info.value.status == http
