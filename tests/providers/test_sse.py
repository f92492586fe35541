"""SSEDecoder: event framing, whatever the chunk boundaries."""

from __future__ import annotations

import pytest

from modelmix.providers.base import SSEEvent
from modelmix.providers.sse import SSEDecoder

STREAM = (
    ": keep-alive comment\n"
    "event: message_start\n"
    'data: {"type":"message_start","text":"héllo 🌍"}\n'
    "\n"
    "data: line one\n"
    "data: line two\n"
    "\n"
    "data:no-space\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "event: ping\n"
    "\n"
    "data: [DONE]\n"
    "\n"
).encode()

EXPECTED = [
    SSEEvent(data='{"type":"message_start","text":"héllo 🌍"}', event="message_start"),
    SSEEvent(data="line one\nline two"),
    SSEEvent(data="no-space"),
    SSEEvent(data="[DONE]"),
]


def _feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_whole_stream_any_line_ending(newline: bytes) -> None:
    assert _feed_all([STREAM.replace(b"\n", newline)]) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_split_point(newline: bytes) -> None:
    """Two chunks, split at every byte (inside UTF-8 characters and inside CRLF too)."""
    data = STREAM.replace(b"\n", newline)
    for cut in range(len(data) + 1):
        assert _feed_all([data[:cut], data[cut:]]) == EXPECTED, cut


def test_one_byte_at_a_time_crlf() -> None:
    data = STREAM.replace(b"\n", b"\r\n")
    assert _feed_all([data[i : i + 1] for i in range(len(data))]) == EXPECTED


def test_events_come_out_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b") == [SSEEvent(data="a")]
    assert decoder.feed(b"\n\n") == [SSEEvent(data="b")]


def test_event_name_resets_after_dispatch() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"event: x\ndata: 1\n\ndata: 2\n\n")
    assert events == [SSEEvent(data="1", event="x"), SSEEvent(data="2")]


def test_flush_dispatches_unterminated_last_event_only_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last") == []
    assert decoder.flush() == [SSEEvent(data="last")]
    assert decoder.flush() == []


def test_bom_and_empty_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.feed(b"\xbfdata: x\n\ndata:\n\n") == [SSEEvent(data="x"), SSEEvent(data="")]
