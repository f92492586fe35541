"""A plain HTTP/1.1 call with the standard library (no client library between the test and
the bytes): status, headers and body."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


def call(method: str, url: str, json: Any = None, headers: dict[str, str] | None = None) -> Answer:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    sent = dict(headers or {})
    body = None
    if json is not None:
        body = orjson.dumps(json)
        sent["content-type"] = "application/json"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        if "host" in {k.lower() for k in sent}:
            conn.putrequest(method, path, skip_host=True)
            for k, v in sent.items():
                conn.putheader(k, v)
            conn.putheader("content-length", str(len(body or b"")))
            conn.endheaders(body)
        else:
            conn.request(method, path, body, sent)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def get(url: str, headers: dict[str, str] | None = None) -> Answer:
    return call("GET", url, headers=headers)


def post(url: str, json: Any = None, headers: dict[str, str] | None = None) -> Answer:
    return call("POST", url, json=json, headers=headers)
