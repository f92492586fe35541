"""The access log: one line per HTTP request, written when its answer has been sent.

``INFO modelmix.access: POST /v1/chat/completions 200 model=sim-small 3.1ms id=mm-...``:
method, path, status, the model that answered (``x-modelmix-model``; ``-`` when none did),
latency until the last byte, and the request id (``x-modelmix-request-id``, the id
``modelmix logs`` shows). An ASGI wrapper around the app, on by default in ``modelmix serve``
(``--no-access-log`` leaves it out: no cost at all then).

Cheap on the request path: a line is formatted and appended to a list; the list goes to the
stream in one write per ``delay`` (a timer on the event loop) and when the server stops,
rather than through ``logging`` with a write and flush per line (``benchmarks/access_log.py``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

from modelmix.server.chat import Message, Receive, Scope, Send

LOGGER = "modelmix.access"
_MODEL = b"x-modelmix-model"
_REQUEST_ID = b"x-modelmix-request-id"


class AccessLog:
    """Wraps an ASGI app; writes one line per HTTP request to ``stream`` (stderr)."""

    def __init__(self, app: Any, stream: TextIO | None = None, delay: float = 0.05) -> None:
        self.app = app
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self._pending: list[str] = []
        self._scheduled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "lifespan":
                    self.flush()  # the server is stopping: nothing may stay in the buffer
            return
        started = time.perf_counter()
        seen: list[Any] = ["-", "-", "-"]  # status, model, request id

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen[0] = message["status"]
                for name, value in message.get("headers") or ():
                    if name == _MODEL:
                        seen[1] = value.decode("latin-1")
                    elif name == _REQUEST_ID:
                        seen[2] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            ms = (time.perf_counter() - started) * 1000.0
            self._pending.append(
                f"INFO {LOGGER}: {scope['method']} {scope['path']} {seen[0]} "
                f"model={seen[1]} {ms:.1f}ms id={seen[2]}\n"
            )
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_later(self.delay, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr: nothing to tell
            pass
