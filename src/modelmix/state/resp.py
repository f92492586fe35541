"""A small asyncio Redis client for the request path: one pipelined connection per event loop.

Only what the gateway's counters use: commands are queued as they are sent and written
together once per loop turn (no lock, no round trip per command, one syscall for the commands
of every request that ran in that turn), replies
are matched to commands in order, and the RESP2 types that those commands answer with
(simple strings, errors, integers, bulk strings, arrays) are parsed as they arrive. ``evalsha``
runs a Lua script by its SHA1 and falls back to ``EVAL`` once when the server answers
``NOSCRIPT`` (a restarted Redis has no scripts loaded); ``fire`` sends a script whose answer
nobody waits for (settlements), handing it to ``on_lost`` when the connection is lost before
its reply came back.

Unreachable is ``ConnectionError`` (connect refused, connection lost) or ``TimeoutError``
(``timeout`` seconds without the reply to the oldest command: one timer per connection, not
one per command): both ``OSError``, like the errors of the blocking client (``link.py``
decides what they mean). The next command after a loss connects again. Works on asyncio's
and uvloop's loops (only ``create_connection`` and a ``Protocol``).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

__all__ = ["AsyncRedis", "RespError", "encode", "parse"]

log = logging.getLogger("modelmix.state")

#: A write nobody waits for: (script name, keys, args).
Fired = tuple[str, list[str], list[Any]]


class RespError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``): the server answered, it is up."""


class _Incomplete(Exception):
    pass


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


def encode(args: Sequence[Any]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply starting at ``pos``: (value, position after it). Raises ``_Incomplete``
    when ``buf`` ends first. An error reply is returned as a ``RespError`` (not raised)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == 58:  # ':'
        return int(line), nxt
    if kind == 36:  # '$'
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise _Incomplete
        return bytes(buf[nxt : nxt + n]), nxt + n + 2
    if kind == 42:  # '*'
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = parse(buf, nxt)
            items.append(item)
        return items, nxt
    if kind == 43:  # '+'
        return line, nxt
    if kind == 45:  # '-'
        return RespError(line.decode("utf-8", "replace")), nxt
    raise ValueError(f"unexpected RESP reply type {chr(kind)!r}")


class _Pending:
    __slots__ = ("deadline", "fired", "future")

    def __init__(
        self, future: asyncio.Future[Any] | None, fired: Fired | None, deadline: float
    ) -> None:
        self.future = future
        self.fired = fired
        self.deadline = deadline


class _Connection(asyncio.Protocol):
    """One connection: written commands and the replies they wait for, in order."""

    def __init__(self, client: AsyncRedis, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: collections.deque[_Pending] = collections.deque()
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        #: Commands written this loop turn, sent together by ``_flush`` (one syscall).
        self._out: list[bytes] = []
        #: The oldest command once seen past its deadline (see ``_check``).
        self._suspect: _Pending | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def write(self, data: bytes, waiter: _Pending) -> None:
        out = self._out
        if not out:
            self.loop.call_soon(self._flush)
        out.append(data)
        self.pending.append(waiter)
        if self._timer is None:
            self._timer = self.loop.call_at(waiter.deadline, self._check)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and not self.closed and self.transport is not None:
            self.transport.write(b"".join(out))

    def _check(self) -> None:
        self._timer = None
        if not self.pending:
            return
        oldest = self.pending[0]
        if self.loop.time() < oldest.deadline:
            self._timer = self.loop.call_at(oldest.deadline, self._check)
        elif self._suspect is not oldest:
            # A loop busy past the deadline may hold the answer unread (a loop that runs due
            # timers before polling for I/O): look again after one more poll before giving up.
            self._suspect = oldest
            self._timer = self.loop.call_later(0.001, self._check)
        else:
            self.fail(TimeoutError(f"Redis did not answer within {self.client.timeout} s"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while pos < len(buf) and self.pending:
                value, pos = parse(buf, pos)
                self._answer(self.pending.popleft(), value)
        except _Incomplete:
            pass
        except ValueError as exc:
            del buf[:pos]
            self.fail(ConnectionError(f"Redis reply not understood: {exc}"))
            return
        del buf[:pos]

    def _answer(self, waiter: _Pending, value: Any) -> None:
        future = waiter.future
        if future is not None:
            if not future.done():
                if isinstance(value, RespError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        elif isinstance(value, RespError) and waiter.fired is not None:
            self.client._fired_error(waiter.fired, value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, exc: Exception) -> None:
        """Give ``exc`` to every waiting command, hand back unanswered writes, close."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.closed = True
        self._out = []
        if self.transport is not None:
            self.transport.abort()
        pending, self.pending = self.pending, collections.deque()
        lost: list[Fired] = []
        for waiter in pending:
            if waiter.future is not None:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
            elif waiter.fired is not None:
                lost.append(waiter.fired)
        self.client._dropped(self, lost)


class AsyncRedis:
    """A client bound to one event loop (see the module docstring)."""

    def __init__(
        self,
        url: str,
        timeout: float,
        on_lost: Callable[[list[Fired]], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.tls = parts.scheme == "rediss"
        self.timeout = timeout
        self.on_lost = on_lost
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._shas: dict[str, str] = {}
        self._sources: dict[str, str] = {}

    # -- connection ------------------------------------------------------------------------

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        connecting = self._connecting = loop.create_future()
        try:
            conn = await asyncio.wait_for(self._open(loop), self.timeout)
        except BaseException as exc:
            err: BaseException = exc
            if isinstance(exc, OSError):  # TimeoutError included
                err = ConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc}")
            self._connecting = None
            connecting.set_exception(err)
            connecting.exception()  # retrieved: no "never retrieved" warning
            if err is exc:
                raise
            raise err from exc
        self._conn = conn
        self._connecting = None
        connecting.set_result(conn)
        return conn

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        context = ssl.create_default_context() if self.tls else None
        transport, conn = await loop.create_connection(
            lambda: _Connection(self, loop), self.host, self.port, ssl=context
        )
        conn.transport = transport  # uvloop calls connection_made only on the next loop turn
        try:
            if self.password is not None:
                auth = [self.username, self.password] if self.username else [self.password]
                await self._send(conn, ["AUTH", *auth])
            if self.db:
                await self._send(conn, ["SELECT", self.db])
        except BaseException:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return conn

    def _send(self, conn: _Connection, args: Sequence[Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = conn.loop.create_future()
        conn.write(encode(args), _Pending(future, None, conn.loop.time() + self.timeout))
        return future

    def _dropped(self, conn: _Connection, lost: list[Fired]) -> None:
        if self._conn is conn:
            self._conn = None
        if lost and self.on_lost is not None:
            self.on_lost(lost)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn._flush()
            conn.closed = True
            conn.transport.close()  # writes what is buffered first

    # -- commands --------------------------------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        """One command's reply (an error reply raises ``RespError``)."""
        conn = await self._connection()
        return await self._send(conn, args)

    def sha(self, source: str) -> str:
        found = self._shas.get(source)
        if found is None:
            found = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        return found

    async def evalsha(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script (``EVAL`` once if the server does not have it yet)."""
        try:
            return await self.execute("EVALSHA", self.sha(source), len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", source, len(keys), *keys, *args)

    def fire(self, name: str, source: str, keys: list[str], args: list[Any]) -> bool:
        """Send the script ``name`` now without waiting for its answer; False when not
        connected (the caller queues it elsewhere)."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        self._sources[name] = source
        data = encode(["EVALSHA", self.sha(source), len(keys), *keys, *args])
        conn.write(data, _Pending(None, (name, keys, args), conn.loop.time() + self.timeout))
        return True

    def _fired_error(self, fired: Fired, error: RespError) -> None:
        name, keys, args = fired
        source = self._sources[name]
        if str(error).startswith("NOSCRIPT"):
            conn = self._conn
            if conn is not None and not conn.closed:
                data = encode(["EVAL", source, len(keys), *keys, *args])
                conn.write(data, _Pending(None, fired, conn.loop.time() + self.timeout))
                return
            if self.on_lost is not None:
                self.on_lost([fired])
            return
        log.error("Redis refused a write: %s", error)

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed

    @property
    def unanswered(self) -> int:
        """Commands written and not answered yet."""
        conn = self._conn
        return len(conn.pending) if conn is not None else 0
