"""The one HTTP client every upstream call goes through.

One keep-alive connection pool (:mod:`modelmix.providers.transport`, created lazily, inside
the running loop); adapters build the request and parse the answer, this module only moves
bytes and turns every failure into an ``UpstreamError``:

* connect refused / reset / DNS -> ``connection``; a body cut short -> ``bad_response``;
  connect slower than ``Timeouts.connect`` or no answer within ``Timeouts.total``
  (non-stream) -> ``timeout``;
* non-2xx -> ``adapter.parse_error(status, body, headers)`` (header names lower-cased);
* streams: the body is split into events by the provider's framing (``Deployment.framing``,
  a decoder from ``providers.specs.FRAMINGS``: SSE, or a binary event stream); the first
  delta must arrive within ``first_token`` of the call start and the whole stream within
  ``total`` (both ``timeout``); a connection that ends before the adapter's parser
  says the stream is complete -> ``bad_response`` ("stream ended before completion").

The "first delta" is the first that carries content, a tool call, a finish reason, usage or
logprobs: deltas that only announce the response id/model (OpenAI's role chunk, Anthropic's
``message_start``) are folded into the next delta, so ``first_token`` measures a real token.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelmix.errors import UpstreamError
from modelmix.providers.specs import decoder_factory
from modelmix.providers.transport import (
    ConnectionPool,
    ConnectTimeout,
    ProtocolError,
    Response,
    ResponseCut,
    ResponseTooLarge,
    TransportError,
)

if TYPE_CHECKING:
    from modelmix.providers.base import (
        Deployment,
        HttpRequest,
        ProviderAdapter,
        StreamDecoder,
        StreamParser,
    )
    from modelmix.types import ChatRequest, ChatResponse, StreamDelta

__all__ = ["STREAM_CUT", "Timeouts", "UpstreamClient", "UpstreamStream"]

STREAM_CUT = "stream ended before completion"
#: Seconds to wait for the end of the body once the stream is complete.
FINISH_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``first_token`` and ``total`` both count from the start of the call."""

    connect: float = 5.0
    first_token: float = 60.0
    total: float = 600.0


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300] + "..." if len(text) > 300 else text


def _transport_error(exc: TransportError | ValueError, timeouts: Timeouts) -> UpstreamError:
    if isinstance(exc, ConnectTimeout):
        return UpstreamError("timeout", f"connect timed out after {timeouts.connect:g}s")
    if isinstance(exc, ResponseTooLarge):  # issue 14, finding 5
        return UpstreamError("bad_response", f"upstream answer too large: {_short(exc)}")
    if isinstance(exc, ResponseCut):  # the answer started, then broke off
        return UpstreamError("bad_response", f"response body cut short: {_short(exc)}")
    if isinstance(exc, ProtocolError):
        return UpstreamError("bad_response", f"invalid HTTP answer: {_short(exc)}")
    return UpstreamError("connection", f"connection failed: {_short(exc)}")


class UpstreamClient:
    """Pooled HTTP client shared by all deployments; close it at shutdown."""

    __slots__ = ("_limit", "_max_response", "_pool")

    def __init__(self, *, limit: int = 1000, max_response_bytes: int = 0) -> None:
        self._limit = limit
        self._max_response = max_response_bytes  # 0: no limit
        self._pool: ConnectionPool | None = None

    def _get_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = ConnectionPool(
                limit=self._limit, max_response_bytes=self._max_response
            )
        return pool

    async def complete(
        self,
        adapter: ProviderAdapter,
        deployment: Deployment,
        request: ChatRequest,
        timeouts: Timeouts,
    ) -> ChatResponse:
        """One non-streamed call. ``UnsupportedParameter`` from the adapter passes through."""
        status, body, headers = await self.exchange(
            adapter.build_request(request, deployment), timeouts
        )
        if not 200 <= status < 300:
            raise adapter.parse_error(status, body, headers)
        return adapter.parse_response(body)

    async def exchange(
        self, http: HttpRequest, timeouts: Timeouts
    ) -> tuple[int, bytes, dict[str, str]]:
        """One request and its whole answer (status, body, headers); transport failures and
        timeouts as ``UpstreamError``. ``complete`` and the embeddings (issue 12) use it."""
        try:
            async with asyncio.timeout(timeouts.total):
                resp = await self._get_pool().request(
                    http.method,
                    http.url,
                    headers=http.headers,
                    body=http.body,
                    connect_timeout=timeouts.connect,
                )
                body = await resp.read()
        except (TransportError, ValueError) as exc:
            raise _transport_error(exc, timeouts) from None
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no complete answer within {timeouts.total:g}s"
            ) from None
        return resp.status, body, resp.headers

    async def stream(
        self,
        adapter: ProviderAdapter,
        deployment: Deployment,
        request: ChatRequest,
        timeouts: Timeouts,
    ) -> UpstreamStream:
        """Start a streamed call; returns once the upstream answered 2xx."""
        http = adapter.build_request(request, deployment)
        pool = self._get_pool()
        now = asyncio.get_running_loop().time()
        total_deadline = now + timeouts.total
        first_deadline = min(now + timeouts.first_token, total_deadline)
        try:
            async with asyncio.timeout_at(first_deadline):
                resp = await pool.request(
                    http.method,
                    http.url,
                    headers=http.headers,
                    body=http.body,
                    connect_timeout=timeouts.connect,
                )
                if not 200 <= resp.status < 300:
                    body = await resp.read()
                    raise adapter.parse_error(resp.status, body, resp.headers)
        except (TransportError, ValueError) as exc:
            raise _transport_error(exc, timeouts) from None
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no first token within {timeouts.first_token:g}s"
            ) from None
        return UpstreamStream(
            resp,
            adapter.stream_parser(),
            timeouts,
            first_deadline,
            total_deadline,
            decoder_factory(deployment.framing)(),
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class UpstreamStream:
    """Canonical deltas of one streamed upstream answer (2xx already checked).

    Iterate it, then ``aclose()`` (also done automatically at the end or on error; safe to
    call twice). ``status`` is the upstream HTTP status.
    """

    __slots__ = (
        "_closed",
        "_decoder",
        "_eof",
        "_first_deadline",
        "_got_first",
        "_id",
        "_model",
        "_parser",
        "_pending",
        "_resp",
        "_timeouts",
        "_total_deadline",
        "status",
    )

    def __init__(
        self,
        resp: Response,
        parser: StreamParser,
        timeouts: Timeouts,
        first_deadline: float,
        total_deadline: float,
        decoder: StreamDecoder,
    ) -> None:
        self._resp = resp
        self._parser = parser
        self._timeouts = timeouts
        self._first_deadline = first_deadline
        self._total_deadline = total_deadline
        self._decoder = decoder
        self._pending: deque[StreamDelta] = deque()
        self._got_first = False
        self._eof = False
        self._closed = False
        self._id: str | None = None
        self._model: str | None = None
        self.status = resp.status

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> StreamDelta:
        pending = self._pending
        while not pending:
            if self._eof:
                await self.aclose()
                if not self._parser.finished():
                    raise UpstreamError("bad_response", STREAM_CUT)
                raise StopAsyncIteration
            await self._fill()
        self._got_first = True
        return pending.popleft()

    @property
    def exhausted(self) -> bool:
        """The whole answer has been read and returned: the next ``__anext__`` ends it."""
        return self._eof and not self._pending and self._parser.finished()

    def take_buffered(self) -> list[StreamDelta]:
        """The deltas parsed from the data read so far but not yet returned (no I/O): after
        ``__anext__``, the rest of what that network read brought, to forward in one write."""
        buffered = list(self._pending)
        self._pending.clear()
        return buffered

    async def _fill(self) -> None:
        chunk = await self._read()
        try:
            if chunk:
                events = self._decoder.feed(chunk)
                if self._resp.at_eof():  # that was the end of the body
                    self._eof = True
                    events += self._decoder.flush()
            else:
                self._eof = True
                events = self._decoder.flush()
            for event in events:
                for delta in self._parser.feed(event):
                    self._push(delta)
        except UpstreamError:
            await self.aclose()
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            await self.aclose()
            raise UpstreamError("bad_response", f"unparseable stream event: {exc!r}") from None

    def _push(self, delta: StreamDelta) -> None:
        if (
            delta.content is None
            and delta.tool_calls is None
            and delta.finish_reason is None
            and delta.usage is None
            and delta.logprobs is None
            and delta.raw is None  # a passthrough event (issue 12) goes out as it came
        ):
            # Only id/model: fold into the next delta.
            if delta.id is not None:
                self._id = delta.id
            if delta.model is not None:
                self._model = delta.model
            return
        if self._id is not None or self._model is not None:
            if delta.id is None:
                delta.id = self._id
            if delta.model is None:
                delta.model = self._model
            self._id = self._model = None
        self._pending.append(delta)

    async def _read(self) -> bytes:
        if self._closed:
            return b""
        try:  # what has arrived already needs no timer (a short answer comes in one read)
            ready = self._resp.read_ready()
        except TransportError:
            ready = None  # let the read below say how the connection broke
        if ready is not None:
            return ready
        deadline = self._total_deadline if self._got_first else self._first_deadline
        if self._parser.finished():
            # Complete: read on only to see the end of the body (so the connection can go
            # back to the pool), and not for long if the upstream keeps it open.
            deadline = min(deadline, asyncio.get_running_loop().time() + FINISH_GRACE)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._resp.readany()
        except TimeoutError:
            await self.aclose()
            if self._parser.finished():  # complete, but the upstream kept the connection open
                return b""
            if self._got_first or deadline == self._total_deadline:
                message = f"stream not complete within {self._timeouts.total:g}s"
            else:
                message = f"no first token within {self._timeouts.first_token:g}s"
            raise UpstreamError("timeout", message) from None
        except ResponseTooLarge as exc:
            await self.aclose()
            raise _transport_error(exc, self._timeouts) from None
        except TransportError:
            await self.aclose()
            if self._parser.finished():
                return b""
            raise UpstreamError("bad_response", STREAM_CUT) from None
        except BaseException:
            await self.aclose()
            raise

    def abort(self) -> None:
        """Close the connection now: a read waiting on it fails (the shutdown deadline)."""
        self._resp.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._resp.release()  # fully read: back to the pool; else the connection is closed
