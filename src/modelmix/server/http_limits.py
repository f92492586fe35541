"""The HTTP server's own bounds: request head size, and the uvicorn settings that carry them.

uvicorn's httptools protocol (the one used when httptools is installed, as here) puts no limit
on the request line and headers: a 64 MB header was read whole and served (issue 14, finding
1). ``limited_protocol`` subclasses it to count the bytes that arrive before the head is
complete (one addition per network read) and answer ``431 Request Header Fields Too Large``
in the client's API format as soon as they pass ``server.limits.max_header_bytes``, closing
the connection; uvicorn's h11 protocol gets the same bound from ``h11_max_incomplete_event_size``.

``uvicorn_config`` builds the ``uvicorn.Config`` every server uses (``modelmix serve``, the
attack suite), with these bounds and the shutdown deadline (``server/shutdown.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelmix.config import Config

__all__ = ["limited_protocol", "uvicorn_config"]

_STATUS_LINE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


def _body(url: bytes, limit: int) -> bytes:
    message = f"Request line and headers exceed the limit of {limit} bytes."
    if url.startswith(b"/v1/messages"):
        return orjson.dumps(
            {"type": "error", "error": {"type": "request_too_large", "message": message}}
        )
    error: dict[str, str | None] = {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "request_header_fields_too_large",
    }
    return orjson.dumps({"error": error})


class _LimitedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses a request head longer than ``max_head``."""

    max_head = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_seen = 0
        self._head_done = False

    def data_received(self, data: bytes) -> None:
        if self._head_done:
            super().data_received(data)
            return
        self._head_seen += len(data)
        super().data_received(data)
        if not self._head_done and self._head_seen > self.max_head:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_done = False  # the next request on this connection starts its own count
        self._head_seen = 0

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        body = _body(getattr(self, "url", b""), self.max_head)
        self.transport.write(
            _STATUS_LINE
            + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def limited_protocol(max_header_bytes: int) -> type[HttpToolsProtocol]:
    """The httptools protocol class with this head limit."""
    return type("LimitedHttpTools", (_LimitedHttpTools,), {"max_head": max_header_bytes})


def uvicorn_config(app: Any, config: Config, **kwargs: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with the gateway's bounds; ``kwargs`` as uvicorn's."""
    limit = config.server.limits.max_header_bytes
    kwargs.setdefault("timeout_graceful_shutdown", int(config.server.shutdown_deadline) + 5)
    return uvicorn.Config(
        app,
        http=limited_protocol(limit),
        h11_max_incomplete_event_size=limit,
        **kwargs,
    )
