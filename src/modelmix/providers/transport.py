"""A small HTTP/1.1 client: keep-alive connection pool on asyncio protocols, httptools parser.

Upstream calls are the gateway's hot path, and aiohttp's client spends ~100 µs of CPU per
request here (URL objects, multidicts, cookie jar, payload registry, a writer task, timers);
this one does what a gateway needs in ~20 µs (``benchmarks/perf/client_cost.py`` measures both):

* ``POST``/``GET`` with a ``bytes`` body; the response head arrives as a :class:`Response`,
  whose body is read whole (``read``) or as it comes (``readany``), with flow control;
* framing by Content-Length, chunked transfer encoding, or (HTTP/1.0 style) the close of the
  connection; ``gzip``/``deflate`` content encodings are decoded;
* TLS for ``https`` (the system's trust store), connections per origin reused while the
  server keeps them alive, dropped after ``keepalive_timeout`` idle seconds, at most ``limit``
  open at once (callers queue for a free slot);
* a request is resent only where it provably never reached the server: a pooled connection
  found closed before any byte of the request was written is swapped for a fresh one; one reset
  after the request was written raises ``ConnectError`` (the server may have seen and billed
  it), so the engine's retry is its own, recorded attempt (no hidden resend).

Failures raise :class:`TransportError` subclasses; timeouts other than connect are the
caller's (``asyncio.timeout``), and a cancelled call closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "ProtocolError",
    "Response",
    "ResponseCut",
    "ResponseTooLarge",
    "TransportError",
]

#: Pause reading from the socket when this many body bytes wait unread.
HIGH_WATER = 1 << 20
USER_AGENT = "modelmix"


class TransportError(Exception):
    """Any failure to get an answer over HTTP."""


class ConnectError(TransportError):
    """The connection could not be opened, or broke before the answer started."""


class ConnectTimeout(ConnectError):
    """Opening the connection took longer than the connect timeout."""


class ResponseCut(TransportError):
    """The connection closed in the middle of the answer's body."""


class ResponseTooLarge(TransportError):
    """The answer's body (decoded) passed the pool's ``max_response_bytes``."""


class ProtocolError(TransportError):
    """The server's bytes are not valid HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    host_header: str
    path: str


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target((scheme, host, port), host_header, path)


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ProtocolError(f"unsupported content-encoding {encoding!r}")


class Response:
    """One answer: ``status`` and ``headers`` (lower-case names) are set; the body streams."""

    __slots__ = (
        "_chunks",
        "_complete",
        "_conn",
        "_decode",
        "_done",
        "_error",
        "_no_pause",
        "_size",
        "_total",
        "_waiter",
        "headers",
        "status",
    )

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._total = 0  # body bytes so far, decoded (bounded by pool.max_response_bytes)
        self._complete = False  # the last body byte has arrived
        self._done = False  # released or closed: the connection is no longer ours
        self._error: TransportError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._no_pause = False  # read() wants the whole body: no flow control
        self._decode = _decoder(headers.get("content-encoding", ""))

    # -- fed by the connection ----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._decode is not None:
            try:
                data = self._decode.decompress(data)
            except zlib.error as exc:
                self._fail(ProtocolError(f"bad compressed body: {exc}"))
                return
        if data:
            self._total += len(data)
            limit = self._conn.pool.max_response_bytes
            if limit and self._total > limit:
                self._fail(ResponseTooLarge(f"answer larger than {limit} bytes"))
                self._conn.close()
                return
            self._chunks.append(data)
            self._size += len(data)
            if self._size > HIGH_WATER and not self._no_pause:
                self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        if self._decode is not None:
            tail = self._decode.flush()
            if tail:
                self._chunks.append(tail)
                self._size += len(tail)
        self._complete = True
        self._wake()

    def _fail(self, error: TransportError) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    # -- for the caller -----------------------------------------------------------------

    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        return self._complete and not self._chunks

    def read_ready(self) -> bytes | None:
        """What ``readany`` would return without waiting (``b""`` at the end), or None when it
        would have to wait for the network. Raises ``ResponseCut`` as ``readany`` does."""
        chunks = self._chunks
        if not chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            return None
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        self._conn.resume()
        return data

    async def readany(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some); ``b""`` at the
        end. Raises ``ResponseCut`` when the connection broke off mid-body."""
        while (data := self.read_ready()) is None:
            await self._wait()
        return data

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        self._no_pause = True
        self._conn.resume()
        try:
            while not self._complete:
                if self._error is not None:
                    raise self._error
                await self._wait()
        except BaseException:
            self.close()
            raise
        body = b"".join(self._chunks)
        self._chunks.clear()
        self.release()
        return body

    def release(self) -> None:
        """Done with the answer: reuse the connection if the body is complete, else close."""
        if self._done:
            return
        self._done = True
        if self._complete:
            self._conn.response_done(self)
        else:
            self._conn.close()

    def close(self) -> None:
        """Done with the answer, and the connection is not reused."""
        if not self._done:
            self._done = True
            self._conn.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: ConnectionPool, origin: tuple[str, str, int]) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._paused = False
        self._head: asyncio.Future[Response] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._response: Response | None = None
        self._got_bytes = False
        self._framed = False  # Content-Length or chunked: the end of the body is known

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._head is None and self._response is None:
            self.close()  # bytes nobody asked for
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._break(ProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._break(ProtocolError(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.pool._forget(self)
        response = self._response
        if response is not None and not response._complete:
            if self.parser.get_status_code() and not self._framed and exc is None:
                response._finish()  # the body ends with the connection (no length given)
            else:
                response._fail(ResponseCut("connection closed in the middle of the body"))
        head = self._head
        if head is not None and not head.done():
            reason = f": {exc}" if exc else ""
            head.set_exception(ConnectError(f"connection closed before the answer{reason}"))

    def pause_writing(self) -> None:  # big request bodies: the transport buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers: dict[str, str] = {}
        for name, value in self._headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._headers = []
        if 100 <= status < 200:  # informational (100 Continue): the real head follows
            return
        if self._head is None:  # an answer to no request
            self._break(ProtocolError("unsolicited response"))
            return
        self._framed = (
            "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        )
        head = self._head
        self._head = None
        try:
            response = Response(self, status, headers)
        except ProtocolError as exc:
            if not head.done():
                head.set_exception(exc)
            self.close()
            return
        self._response = response
        if not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            return
        self.reusable = self.parser.should_keep_alive()
        if self._response is not None:
            self._response._finish()

    # -- for the pool and the response --------------------------------------------------

    def send(self, head: bytes, body: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._head = asyncio.get_running_loop().create_future()
        self._response = None
        self._got_bytes = False
        self._framed = False
        self.reusable = False
        self.transport.write(head + body)
        return self._head

    def _break(self, error: TransportError) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        if self._response is not None:
            self._response._fail(error)
        self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def response_done(self, response: Response) -> None:
        if self._response is response:
            self._response = None
        if self.reusable and not self.closed:
            self.idle_since = time.monotonic()
            self.pool._put_back(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            self.pool._forget(self)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, at most ``limit`` open (0: no limit)."""

    def __init__(
        self,
        *,
        limit: int = 1000,
        keepalive_timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = 0,
    ) -> None:
        self.limit = limit
        #: an answer's body past this many bytes fails with ``ResponseTooLarge`` (0: no limit)
        self.max_response_bytes = max_response_bytes
        self.keepalive_timeout = keepalive_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, _Target] = {}
        self._ssl = ssl_context  # None: the system's trust store, made on first https use
        self._closed = False

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _parse_url(url)
            if len(self._targets) > 4096:
                self._targets.clear()
            self._targets[url] = target
        return target

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes = b"",
        connect_timeout: float | None = None,
    ) -> Response:
        """Send one request; returns when the answer's head has arrived."""
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        target = self._target(url)
        lines = [f"{method} {target.path} HTTP/1.1\r\nhost: {target.host_header}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}\r\n")
        lines.append(
            f"content-length: {len(body)}\r\nuser-agent: {USER_AGENT}\r\n"
            "accept-encoding: gzip, deflate\r\n\r\n"
        )
        head = "".join(lines).encode("latin-1")
        conn, reused = await self._acquire(target.origin, connect_timeout, fresh=False)
        if reused and (conn.closed or conn.transport is None or conn.transport.is_closing()):
            # found dead before a byte was written: the server never saw this request
            conn.close()
            conn, _ = await self._acquire(target.origin, connect_timeout, fresh=True)
        # Once written, never resent here: a reset before the answer's head may come after the
        # server took (and billed) the request; the caller's retry is its own attempt.
        return await self._exchange(conn, head, body)

    async def _acquire(
        self, origin: tuple[str, str, int], connect_timeout: float | None, *, fresh: bool
    ) -> tuple[_Connection, bool]:
        """An idle connection to ``origin`` (reused: True), or a new one once fewer than
        ``limit`` are open (closing idle ones to other origins first, else queueing)."""
        while True:
            if not fresh:
                conn = self._take_idle(origin)
                if conn is not None:
                    return conn, True
            if not self.limit or len(self._open) < self.limit or self._close_one_idle():
                return await self._connect(origin, connect_timeout), False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _exchange(self, conn: _Connection, head: bytes, body: bytes) -> Response:
        try:
            return await conn.send(head, body)
        except BaseException:
            conn.close()
            raise

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_ok = time.monotonic() - self.keepalive_timeout
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest_ok:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = _Connection(self, origin)
        self._open.add(conn)
        try:
            ssl_context = self._ssl_context() if scheme == "https" else None
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=host if ssl_context else None,
                )
        except TimeoutError:
            self._forget(conn)
            raise ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            self._forget(conn)
            raise ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        except BaseException:
            self._forget(conn)
            raise
        conn.transport = transport  # uvloop calls connection_made only on the next loop turn
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return True
        return False

    def _put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        self._idle.setdefault(conn.origin, []).append(conn)
        self._wake_one()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; later requests fail."""
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
