"""The HTTP/1.1 client against a raw asyncio server that scripts every byte it sends."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelmix.providers.transport import (
    ConnectError,
    ConnectionPool,
    ProtocolError,
    ResponseCut,
)

Writer = asyncio.StreamWriter


@dataclass
class Seen:
    """What the server saw: requests per connection, in order."""

    connections: int = 0
    requests: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (conn, head, body)


async def _len(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-multi: a\r\nX-Multi: b\r\n\r\nhello")
    return True


async def _chunked(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await w.drain()
    await asyncio.sleep(0.05)
    w.write(b"6\r\n world\r\n0\r\n\r\n")
    return True


async def _close_delimited(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
    return False


async def _gzip(w: Writer, conn: int, nth: int) -> bool:
    body = gzip.compress(b"x" * 10000)
    w.write(
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(body)
        + body
    )
    return True


async def _cut(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
    return False


async def _garbage(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"this is not HTTP at all\r\n\r\n")
    return False


async def _stale(w: Writer, conn: int, nth: int) -> bool:
    """Answers a connection's first request; closes it, unanswered, on the second."""
    if nth > 0:
        return False
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    return True


async def _big(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    piece = b"y" * 65536
    for _ in range(64):  # 4 MiB, more than the read buffer's high-water mark
        w.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        await w.drain()
    w.write(b"0\r\n\r\n")
    return True


async def _slow(w: Writer, conn: int, nth: int) -> bool:
    await asyncio.sleep(5)
    return False


async def _echo(w: Writer, conn: int, nth: int) -> bool:
    return True  # answered by the server loop, which knows the request


ROUTES: dict[str, Callable[[Writer, int, int], Awaitable[bool]]] = {
    "/len": _len,
    "/chunked": _chunked,
    "/close": _close_delimited,
    "/gzip": _gzip,
    "/cut": _cut,
    "/garbage": _garbage,
    "/stale": _stale,
    "/big": _big,
    "/slow": _slow,
    "/echo": _echo,
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()
    ids = itertools.count()

    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        conn = next(ids)
        seen.connections += 1
        try:
            for nth in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                seen.requests.append((conn, head, body))
                path = head.split(b" ")[1].decode().split("?")[0]
                if path == "/echo":
                    payload = head + body
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
                    )
                    keep = True
                else:
                    keep = await ROUTES[path](writer, conn, nth)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        srv.close()


H = {"content-type": "application/json"}


async def test_content_length_answer_and_connection_reuse(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        for _ in range(3):
            resp = await pool.request("POST", url + "/len", headers=H, body=b"{}")
            assert resp.status == 200
            assert resp.headers["x-multi"] == "a, b"  # repeated headers joined, names lower-cased
            assert await resp.read() == b"hello"
    finally:
        await pool.close()
    assert seen.connections == 1 and len(seen.requests) == 3


async def test_request_head_carries_host_length_and_given_headers(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    try:
        resp = await pool.request(
            "POST", url + "/echo?alt=sse", headers={"authorization": "Bearer k"}, body=b"abc"
        )
        echoed = await resp.read()
    finally:
        await pool.close()
    head, _, body = echoed.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /echo?alt=sse HTTP/1.1"
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert fields["host"] == url.removeprefix("http://")
    assert fields["content-length"] == "3" and fields["authorization"] == "Bearer k"
    assert body == b"abc"


async def test_chunked_body_streams_as_it_arrives(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        resp = await pool.request("POST", url + "/chunked", headers=H, body=b"")
        parts = []
        while chunk := await resp.readany():
            parts.append(chunk)
        assert resp.at_eof()
        resp.release()
        assert parts == [b"hello", b" world"]  # the pause between chunks shows
        again = await pool.request("POST", url + "/len", headers=H, body=b"")
        assert await again.read() == b"hello"
    finally:
        await pool.close()
    assert seen.connections == 1  # a fully read chunked answer leaves the connection reusable


async def test_body_delimited_by_close_and_no_reuse(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        resp = await pool.request("POST", url + "/close", headers=H, body=b"")
        assert await resp.read() == b"until the end"
        resp2 = await pool.request("POST", url + "/len", headers=H, body=b"")
        assert await resp2.read() == b"hello"
    finally:
        await pool.close()
    assert seen.connections == 2


async def test_gzip_body_is_decoded(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    try:
        resp = await pool.request("POST", url + "/gzip", headers=H, body=b"")
        assert await resp.read() == b"x" * 10000
    finally:
        await pool.close()


async def test_body_cut_short_raises(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    try:
        resp = await pool.request("POST", url + "/cut", headers=H, body=b"")
        with pytest.raises(ResponseCut):
            await resp.read()
        resp = await pool.request("POST", url + "/cut", headers=H, body=b"")
        assert await resp.readany() == b"only ten b"
        with pytest.raises(ResponseCut):
            await resp.readany()
        resp.release()
    finally:
        await pool.close()


async def test_invalid_http_is_a_protocol_error(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    try:
        with pytest.raises(ProtocolError):
            await pool.request("POST", url + "/garbage", headers=H, body=b"")
    finally:
        await pool.close()


async def test_reset_after_the_request_was_written_is_not_resent(
    server: tuple[str, Seen],
) -> None:
    """The pooled connection takes the request and closes without answering: the server may
    have acted on it, so the pool raises instead of sending it again (issue 14, finding 7)."""
    url, seen = server
    pool = ConnectionPool()
    try:
        first = await pool.request("POST", url + "/stale", headers=H, body=b"")
        assert await first.read() == b"ok"
        with pytest.raises(ConnectError):
            await pool.request("POST", url + "/stale", headers=H, body=b"")
    finally:
        await pool.close()
    assert seen.connections == 1
    assert [conn for conn, _, _ in seen.requests] == [0, 0]  # sent once, never twice


async def _answer_then_hang_up(w: Writer, conn: int, nth: int) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await w.drain()
    return False  # keep-alive answer, then the server closes the idle connection


ROUTES["/hangup"] = _answer_then_hang_up


async def test_connection_found_dead_before_writing_goes_to_a_fresh_one(
    server: tuple[str, Seen],
) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        first = await pool.request("POST", url + "/hangup", headers=H, body=b"")
        assert await first.read() == b"ok"
        await asyncio.sleep(0.05)  # the close reaches the pool while the connection is idle
        second = await pool.request("POST", url + "/hangup", headers=H, body=b"")
        assert await second.read() == b"ok"
    finally:
        await pool.close()
    assert [conn for conn, _, _ in seen.requests] == [0, 1]


async def test_refused_connection(server: tuple[str, Seen]) -> None:
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    srv_gone = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"
    pool = ConnectionPool()
    try:
        with pytest.raises(ConnectError):
            await pool.request("POST", srv_gone + "/len", headers=H, body=b"")
    finally:
        await pool.close()


async def test_limit_queues_callers_for_a_free_connection(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool(limit=1)

    async def one() -> bytes:
        resp = await pool.request("POST", url + "/chunked", headers=H, body=b"")
        return await resp.read()

    try:
        bodies = await asyncio.gather(*[one() for _ in range(4)])
    finally:
        await pool.close()
    assert bodies == [b"hello world"] * 4
    assert seen.connections == 1


async def test_idle_connections_expire(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool(keepalive_timeout=0.0)
    try:
        for _ in range(2):
            resp = await pool.request("POST", url + "/len", headers=H, body=b"")
            await resp.read()
            await asyncio.sleep(0.01)
    finally:
        await pool.close()
    assert seen.connections == 2


async def test_big_body_with_flow_control(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    try:
        resp = await pool.request("POST", url + "/big", headers=H, body=b"")
        await asyncio.sleep(0.3)  # let the server fill the buffer past the high-water mark
        total = 0
        while chunk := await resp.readany():
            total += len(chunk)
        assert total == 64 * 65536
        resp.release()
        whole = await pool.request("POST", url + "/big", headers=H, body=b"")
        await asyncio.sleep(0.3)
        assert len(await whole.read()) == 64 * 65536
    finally:
        await pool.close()


async def test_cancelled_call_closes_its_connection(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request("POST", url + "/slow", headers=H, body=b"")
        resp = await pool.request("POST", url + "/len", headers=H, body=b"")
        assert await resp.read() == b"hello"
    finally:
        await pool.close()
    assert seen.connections == 2  # the one with an unanswered request was not reused


async def test_header_injection_is_refused(server: tuple[str, Seen]) -> None:
    url, seen = server
    pool = ConnectionPool()
    try:
        with pytest.raises(ValueError):
            await pool.request("POST", url + "/len", headers={"x-key": "a\r\nx-evil: 1"})
    finally:
        await pool.close()
    assert seen.requests == []


async def test_closed_pool_refuses_requests(server: tuple[str, Seen]) -> None:
    url, _ = server
    pool = ConnectionPool()
    await pool.close()
    with pytest.raises(ConnectError):
        await pool.request("POST", url + "/len", headers=H)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    args += " -addext subjectAltName=DNS:localhost"
    subprocess.run(
        ["openssl", *args.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    pool = ConnectionPool(ssl_context=trusting)
    untrusting = ConnectionPool()
    try:
        resp = await pool.request("GET", f"https://localhost:{port}/", headers={})
        assert await resp.read() == b"secure"
        with pytest.raises(ConnectError):  # a certificate nobody vouched for
            await untrusting.request("GET", f"https://localhost:{port}/", headers={})
    finally:
        await pool.close()
        await untrusting.close()
        srv.close()
