"""``modelmix logs ID`` and the "why it failed" lines under ``modelmix logs``: what a request
asked for (model, API, streaming, key, tags, metadata, prompt size), what happened to it
(route, candidates, each attempt with its error) and why it failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson


def failure_line(r: dict[str, Any]) -> str:
    """``mm-... failed (HTTP 404): <error>`` with the last attempt's own error when there is
    one (the upstream's words), for the lines under the table."""
    text = f"{r['id']} failed (HTTP {r['http_status']}): {r['error'] or r['status']}"
    failed = [a for a in r["attempts"] if a["status"] != "ok" and a.get("error")]
    if failed and failed[-1]["error"] not in (r["error"] or ""):
        text += f" [last attempt: {failed[-1]['model']}: {failed[-1]['error']}]"
    return text


def _asked(r: dict[str, Any]) -> str:
    parts = [
        f"model {r['requested_model']!r}",
        f"via the {r['api']} API",
        "streamed" if r["stream"] else "not streamed",
        f"key {r['key_id']}" if r["key_id"] else "no key",
    ]
    return ", ".join(parts)


def _attempt(i: int, a: dict[str, Any]) -> str:
    head = f"  {i}. {a['model']} ({a['provider']} {a['upstream_model']}, {a['deployment']}): "
    if a["status"] == "ok":
        return head + f"ok, {a['prompt_tokens']}/{a['completion_tokens']} tokens"
    status = a["http_status"] or a["error_kind"] or a["status"]
    return head + f"{a['status']} {status}: {a['error'] or '-'}"


def detail_lines(r: dict[str, Any]) -> list[str]:
    started = datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
    outcome = "ok" if r["status"] == "ok" else f"FAILED (HTTP {r['http_status']})"
    tags = orjson.loads(r["tags"]) if isinstance(r.get("tags"), str) else r.get("tags") or []
    lines = [
        f"request {r['id']}  {started}  {outcome}",
        f"asked:     {_asked(r)}",
        f"prompt:    {r['prompt_tokens']:,} tokens",
    ]
    if r["metadata"]:
        lines.append(f"metadata:  {orjson.dumps(r['metadata']).decode()}")
    if tags:
        lines.append(f"tags:      {', '.join(tags)}")
    if r["status"] != "ok":
        lines.append(f"why:       {r['error'] or r['status']}")
    lines.append(f"route:     {r['route'] or '-'}  answered by: {r['final_model'] or '-'}")
    decision = {k: v for k, v in r["decision"].items() if k != "decision_us"}
    if decision:
        lines.append(f"decision:  {orjson.dumps(decision).decode()}")
    lines.append("attempts:" if r["attempts"] else "attempts:  none (refused before any call)")
    lines += [_attempt(i, a) for i, a in enumerate(r["attempts"], 1)]
    lines.append(f"cost:      ${r['cost_usd']} ({r.get('cost_confidence', 'exact')})")
    return lines
