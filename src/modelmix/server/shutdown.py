"""Stopping with a deadline (issue 14, finding 9).

On SIGTERM uvicorn stops accepting connections and waits for the open ones; a stream could keep
it waiting up to ``engine.timeouts.total`` (600 s), past any process manager's patience, and
the SIGKILL that follows loses the rows not yet written. ``DeadlineServer`` gives in-flight
requests ``server.shutdown_deadline`` seconds (default 30); then every stream still open is
aborted (``StreamRegistry.expire``): its upstream connection is closed, the client gets an
explicit error event ("the gateway is shutting down"), and its ledger row is finished and
queued like any other, so the lifespan's ledger close writes it before the process exits.
uvicorn's own ``timeout_graceful_shutdown`` (a few seconds later) cancels anything left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import uvicorn

from modelmix.errors import GatewayError

if TYPE_CHECKING:
    import socket

    from modelmix.engine import EngineStream

__all__ = ["DeadlineServer", "StreamRegistry"]

log = logging.getLogger("modelmix.server")


class StreamRegistry:
    """The streams being sent right now (the chat endpoint adds and removes them)."""

    __slots__ = ("_streams", "expired")

    def __init__(self) -> None:
        self._streams: set[EngineStream] = set()
        self.expired = False

    def add(self, stream: EngineStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: EngineStream) -> None:
        self._streams.discard(stream)

    def __len__(self) -> int:
        return len(self._streams)

    def expire(self) -> None:
        """The deadline passed: end every open stream with an error."""
        self.expired = True
        if self._streams:
            log.warning("shutdown deadline passed: ending %d open stream(s)", len(self._streams))
        err = GatewayError(
            "unavailable",
            "The gateway is shutting down: this stream was ended at its shutdown deadline.",
            code="shutting_down",
        )
        for stream in list(self._streams):
            stream.abort(err)


class DeadlineServer(uvicorn.Server):
    """``uvicorn.Server`` whose shutdown ends open streams after ``deadline`` seconds."""

    def __init__(self, config: uvicorn.Config, streams: StreamRegistry, deadline: float) -> None:
        super().__init__(config)
        self.streams = streams
        self.deadline = deadline

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = asyncio.get_running_loop().call_later(self.deadline, self.streams.expire)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()


def deadline_server(app: Any, cfg: uvicorn.Config, deadline: float) -> uvicorn.Server:
    """A ``DeadlineServer`` for a ``GatewayApp`` (its chat endpoint's streams)."""
    return DeadlineServer(cfg, app.chat.streams, deadline)
