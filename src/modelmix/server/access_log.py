"""The access log: one line per HTTP request, written when its answer has been sent.

``POST /v1/chat/completions 200 model=sim-small 3.1ms id=mm-...``: method, path, status, the
model that answered (``x-modelmix-model``; ``-`` when none did), latency until the last byte,
and the request id (``x-modelmix-request-id``, the id ``modelmix logs`` shows). An ASGI wrapper
around the app, on by default in ``modelmix serve`` (``--no-access-log`` leaves it out: no
cost at all then).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from modelmix.server.chat import Message, Receive, Scope, Send

log = logging.getLogger("modelmix.access")

_MODEL = b"x-modelmix-model"
_REQUEST_ID = b"x-modelmix-request-id"


class AccessLog:
    """Wraps an ASGI app; logs each HTTP request to the ``modelmix.access`` logger (INFO)."""

    def __init__(self, app: Any, logger: logging.Logger = log) -> None:
        self.app = app
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "model": "-", "id": "-"}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers") or ():
                    if name == _MODEL:
                        seen["model"] = value.decode("latin-1")
                    elif name == _REQUEST_ID:
                        seen["id"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.log.info(
                "%s %s %s model=%s %.1fms id=%s",
                scope["method"],
                scope["path"],
                seen["status"] or "-",
                seen["model"],
                (time.perf_counter() - started) * 1000.0,
                seen["id"],
            )
