"""Incremental server-sent-events decoder.

Bytes go in as they arrive from the socket, complete events come out. Chunk boundaries may
fall anywhere: inside a line, between ``\\r`` and ``\\n``, inside a multi-byte UTF-8 character.
Lines are split on bytes and only complete lines are decoded, so a character cut in two is
decoded once both halves are here. Follows the WHATWG event-stream rules that matter to LLM
APIs: ``data:`` lines join with ``\\n``, ``event:`` names the event, lines starting with ``:``
are comments, one leading space after the colon is dropped, a blank line dispatches, and an
event without data is not dispatched. ``id:`` and ``retry:`` are ignored (no reconnects here).
"""

from __future__ import annotations

from modelmix.providers.base import SSEEvent

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Feed it raw bytes, get back the events they complete."""

    __slots__ = ("_data", "_event", "_started", "_tail")

    def __init__(self) -> None:
        self._tail = b""  # bytes of an incomplete line (may end with a lone b"\r")
        self._data: list[str] = []
        self._event: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._tail + chunk if self._tail else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._tail = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        if b"\r" in buf:
            # A trailing "\r" may be the first half of "\r\n": keep it for the next chunk.
            held = buf.endswith(b"\r")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buf += b"\r"
        if (
            not self._data
            and self._event is None
            and buf.startswith(b"data: ")
            and buf.endswith(b"\n\n")
        ):
            # The usual shape: whole events of one ``data: ...`` line each. Then the buffer
            # holds n blank-line separators, 2n newlines, and "data: " after every separator
            # but the last (all counted in C); one decode and one split give the events.
            n = buf.count(b"\n\n")
            if buf.count(b"\n") == 2 * n and buf.count(b"\n\ndata: ") == n - 1:
                self._tail = b""
                text = buf[6:-2].decode("utf-8", "replace")
                return [SSEEvent(data) for data in text.split("\n\ndata: ")]
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if not lines:
            return []
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def flush(self) -> list[SSEEvent]:
        """Call at end of stream: dispatches a last event that lacked its blank line.

        (Strict SSE discards it; upstreams that forget the final newline are common enough
        that being lenient costs nothing.)
        """
        events: list[SSEEvent] = []
        tail, self._tail = self._tail, b""
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        if tail:
            self._line(tail, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(data="\n".join(self._data), event=self._event))
                self._data = []
            self._event = None
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
