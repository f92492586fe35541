"""A minimal, fast OpenAI-compatible upstream for the benchmark (raw asyncio, no framework).

``POST .../chat/completions`` answers a fixed chat completion; with ``"stream": true`` it answers
SSE (chunked transfer encoding): a role chunk, ``--chunks`` content chunks, a finish chunk, a
usage chunk (always sent, as with ``stream_options.include_usage``) and ``data: [DONE]``.
``GET /health`` answers 200. ``--delay`` (seconds) is waited before the answer (and between
stream chunks with ``--chunk-delay``). HTTP/1.1 keep-alive; bodies must carry Content-Length.

    python3 benchmarks/perf/mock_upstream.py --port 9100 [--delay 0] [--chunks 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

MODEL = "mock-model"
USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}


def _json_body(model: str) -> bytes:
    body = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the mock upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _sse_events(model: str, chunks: int) -> list[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[dict[str, object]] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f"tok{i} "}) for i in range(chunks)]
    events.append(chunk({}, "stop"))
    usage = chunk({})
    usage["choices"] = []
    usage["usage"] = USAGE
    events.append(usage)
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Mock:
    def __init__(self, delay: float, chunks: int, chunk_delay: float) -> None:
        self.delay = delay
        self.chunk_delay = chunk_delay
        body = _json_body(MODEL)
        self.json_response = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.sse_head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        self.sse_events = [_chunked(e) for e in _sse_events(MODEL, chunks)]
        self.sse_all = self.sse_head + b"".join(self.sse_events) + b"0\r\n\r\n"
        self.health = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        self.not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class MockProtocol(asyncio.Protocol):
    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.queue: list[tuple[bytes, bytes]] = []
        self.task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            self.queue.append((head.split(b" ", 2)[1], body))
            if self.task is None or self.task.done():
                self.task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        mock = self.mock
        transport = self.transport
        assert transport is not None
        while self.queue:
            path, body = self.queue.pop(0)
            if transport.is_closing():
                return
            if path.endswith(b"/chat/completions"):
                stream = b'"stream":true' in body.replace(b" ", b"")
                if mock.delay:
                    await asyncio.sleep(mock.delay)
                if not stream:
                    transport.write(mock.json_response)
                elif not mock.chunk_delay:
                    transport.write(mock.sse_all)
                else:
                    transport.write(mock.sse_head)
                    for event in mock.sse_events:
                        transport.write(event)
                        await asyncio.sleep(mock.chunk_delay)
                    transport.write(b"0\r\n\r\n")
            elif path.startswith(b"/health"):
                transport.write(mock.health)
            else:
                transport.write(mock.not_found)


async def serve(port: int, delay: float, chunks: int, chunk_delay: float) -> None:
    mock = Mock(delay, chunks, chunk_delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(mock), "127.0.0.1", port, reuse_address=True, backlog=4096
    )
    print(f"mock upstream on http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunks", type=int, default=8, help="content chunks per stream")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay, args.chunks, args.chunk_delay))


if __name__ == "__main__":
    main()
