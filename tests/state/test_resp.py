"""The asyncio RESP client (state/resp.py) against a real redis-server: parsing, pipelining
under concurrency, scripts after a restart (NOSCRIPT), a lost server, a silent one (timeout),
writes handed back when their connection is lost; on asyncio's loop and on uvloop's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

from modelmix.state import scripts
from modelmix.state.resp import AsyncRedis, Fired, RespError, _Incomplete, encode, parse
from tests.state.redis_server import RedisServer

INCR_SCRIPT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def test_parse_every_reply_type_and_incomplete_input() -> None:
    data = (
        b"+OK\r\n-ERR bad\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*3\r\n:1\r\n$1\r\nx\r\n*1\r\n:-2\r\n*-1\r\n"
    )
    pos, out = 0, []
    while pos < len(data):
        value, pos = parse(data, pos)
        out.append(value)
    assert out[0] == b"OK" and isinstance(out[1], RespError) and str(out[1]) == "ERR bad"
    assert out[2:] == [42, b"abc", None, [1, b"x", [-2]], None]
    # every prefix cut short parses the whole replies it holds, then says "incomplete"
    for cut in range(1, len(data)):
        pos, got = 0, []
        with pytest.raises(_Incomplete):
            while True:
                value, pos = parse(data[:cut], pos)
                got.append(value)
        assert [repr(v) for v in got] == [repr(v) for v in out[: len(got)]]
    assert (
        encode(["SET", "k", 1.5, b"\x00"])
        == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n1.5\r\n$1\r\n\x00\r\n"
    )


def _run(loop_kind: str, main: Callable[[], Awaitable[Any]]) -> Any:
    if loop_kind == "uvloop":
        return uvloop.run(main())
    return asyncio.run(main())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_pipelined_commands_answer_in_order(redis_server: RedisServer, loop_kind: str) -> None:
    async def main() -> None:
        client = AsyncRedis(redis_server.url, timeout=2.0)
        try:
            assert await client.execute("SET", "k", "v") == b"OK"
            assert await client.execute("GET", "k") == b"v"
            assert await client.execute("GET", "missing") is None
            with pytest.raises(RespError, match=r"WRONGTYPE"):
                await client.execute("HGET", "k", "f")
            # 500 concurrent INCRs on one connection: every reply is its own command's
            got = await asyncio.gather(*(client.execute("INCR", "n") for _ in range(500)))
            assert sorted(got) == list(range(1, 501))
            assert got == sorted(got)  # written in order, answered in order
            big = "x" * 200_000  # a reply that arrives in several reads
            await client.execute("SET", "big", big)
            assert await client.execute("GET", "big") == big.encode()
        finally:
            client.close()

    _run(loop_kind, main)


def test_evalsha_loads_the_script_again_after_a_restart(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = AsyncRedis(redis_server.url, timeout=2.0)
        try:
            assert await client.evalsha(INCR_SCRIPT, ["s"], [5]) == 5
            await client.execute("SCRIPT", "FLUSH")  # as a restarted Redis: no scripts
            assert await client.evalsha(INCR_SCRIPT, ["s"], [2]) == 7
            # the real counters' script (integers and nested arrays back)
            out = await client.evalsha(scripts.RESERVE, ["mm:x"], [10, 0])
            assert out == [-1]  # the counter does not exist yet
        finally:
            client.close()

    asyncio.run(main())


def test_lost_server_raises_oserror_then_reconnects(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = AsyncRedis(redis_server.url, timeout=0.5)
        try:
            assert await client.execute("PING") == b"PONG"
            redis_server.stop()
            with pytest.raises(OSError):  # ConnectionError: link.py's DOWN_ERRORS
                await client.execute("PING")
            with pytest.raises(OSError):  # refused while it is down
                await client.execute("PING")
            redis_server.start()
            assert await client.execute("PING") == b"PONG"
            assert await client.evalsha(INCR_SCRIPT, ["s"], [1]) == 1  # NOSCRIPT handled
        finally:
            client.close()

    asyncio.run(main())


def test_silent_server_times_out_and_hands_back_fired_writes() -> None:
    """A server that accepts and never answers: the oldest command's timeout fails every
    waiting command (TimeoutError) and returns the fire-and-forget writes to ``on_lost``."""

    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lost: list[Fired] = []
        client = AsyncRedis(f"redis://127.0.0.1:{port}/0", timeout=0.2, on_lost=lost.extend)
        try:
            started = asyncio.get_running_loop().time()
            waiting = asyncio.ensure_future(client.execute("PING"))
            await asyncio.sleep(0.05)
            assert client.fire("SETTLE", scripts.SETTLE, ["a"], [1, 2])
            assert client.fire("SETTLE", scripts.SETTLE, ["b"], [3, 4])
            assert client.unanswered == 3
            with pytest.raises(TimeoutError):
                await waiting
            assert 0.15 < asyncio.get_running_loop().time() - started < 2.0
            assert lost == [("SETTLE", ["a"], [1, 2]), ("SETTLE", ["b"], [3, 4])]
            assert not client.fire("SETTLE", scripts.SETTLE, ["c"], [1, 1])  # not connected
        finally:
            client.close()
            server.close()
            for w in accepted:
                w.close()

    asyncio.run(main())


def test_fired_writes_land_and_survive_noscript(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = AsyncRedis(redis_server.url, timeout=2.0)
        try:
            await client.execute("PING")
            await client.execute("SCRIPT", "FLUSH")
            for _ in range(50):
                assert client.fire("INCR", INCR_SCRIPT, ["f"], [2])
            # each was refused (NOSCRIPT) and sent again as EVAL: all applied once answered
            for _ in range(200):
                if not client.unanswered:
                    break
                await asyncio.sleep(0.01)
            assert client.unanswered == 0
            assert await client.execute("GET", "f") == b"100"
            for _ in range(50):  # the script is loaded now: one EVALSHA each
                assert client.fire("INCR", INCR_SCRIPT, ["f"], [1])
            assert await client.execute("GET", "f") == b"150"  # answered after them
        finally:
            client.close()

    asyncio.run(main())


def test_password_and_database_from_the_url(tmp_path: Any) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        admin = server.client()
        admin.config_set("requirepass", "s3cret")
        admin.close()

        async def main() -> None:
            url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
            client = AsyncRedis(url, timeout=2.0)
            try:
                await client.execute("SET", "where", "db3")
                assert await client.execute("SELECT", 3) == b"OK"
                assert await client.execute("GET", "where") == b"db3"
            finally:
                client.close()
            wrong = AsyncRedis(f"redis://:nope@127.0.0.1:{server.port}/0", timeout=2.0)
            with pytest.raises(RespError):
                await wrong.execute("PING")
            wrong.close()

        asyncio.run(main())
    finally:
        server.stop()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_busy_loop_is_not_a_timeout(redis_server: RedisServer, loop_kind: str) -> None:
    """The loop blocked past a command's deadline while Redis answered in time: the answer
    waiting on the socket counts, on either loop, whichever of due timers and I/O it runs
    first."""

    async def main() -> None:
        client = AsyncRedis(redis_server.url, timeout=0.2)
        try:
            assert await client.execute("PING") == b"PONG"
            waiting = asyncio.ensure_future(client.execute("INCR", "busy"))
            for _ in range(3):  # the task writes the command; the turn's flush sends it
                await asyncio.sleep(0)
            time.sleep(0.5)  # the loop is busy elsewhere, well past the deadline
            assert await waiting == 1
            assert await client.execute("GET", "busy") == b"1"
        finally:
            client.close()

    _run(loop_kind, main)
