"""Canonical stream deltas -> the Responses API's SSE event sequence.

``response.created``, ``response.in_progress``, then per output item ``response.output_item.added``
(a message: ``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.done``, ``response.content_part.done``; a function call:
``response.function_call_arguments.delta``..., ``response.function_call_arguments.done``),
``response.output_item.done``, and last ``response.completed`` (``response.incomplete`` when the
answer was cut) carrying the whole response. Every event has ``type`` and a growing
``sequence_number``, and goes out as ``event: <type>`` + ``data: <json>``. A failure after the
stream started ends it with an ``error`` event and ``response.failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.types import StreamDelta, ToolCall, ToolCallDelta, Usage
from modelmix.wire.openai_chat.client import render_error
from modelmix.wire.openai_responses.render import (
    function_call_item,
    message_item,
    response_object,
    text_part,
)
from modelmix.wire.openai_responses.request import ResponsesRequest
from modelmix.wire.openai_responses.vocabulary import INCOMPLETE_REASON

__all__ = ["ResponsesStreamRenderer"]


class _Call:
    __slots__ = ("arguments", "call", "index", "item_id")

    def __init__(self, index: int, item_id: str, call: ToolCall) -> None:
        self.index = index
        self.item_id = item_id
        self.call = call
        self.arguments: list[str] = []


class ResponsesStreamRenderer:
    """One streamed answer's events; ``delta``/``end``/``error`` as the chat endpoint calls them."""

    def __init__(
        self,
        rid: str,
        model: str,
        created: int,
        native: ResponsesRequest,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.rid = rid
        self.model = model
        self.created = created
        self.native = native
        #: Called with the final ``response`` object (the server stores it).
        self.on_done = on_done
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.text: list[str] | None = None  # the open message's text, None: no open message
        self.message_index = -1
        self.calls: dict[int, _Call] = {}
        self.usage: Usage | None = None
        self.finish: str | None = None

    # -- framing ------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.native,
            rid=self.rid,
            model=self.model,
            created_at=self.created,
            status=status,
            output=[item for item in self.output if item],
            **extra,
        )

    def _start(self) -> bytes:
        self.started = True
        head = self._response("in_progress")
        return self._event("response.created", response=head) + self._event(
            "response.in_progress", response=head
        )

    # -- items --------------------------------------------------------------------------------

    def _open_message(self) -> bytes:
        self.message_index = len(self.output)
        item_id = f"msg_{self.rid}"
        self.output.append({})
        self.text = []
        where = {"item_id": item_id, "output_index": self.message_index}
        return self._event(
            "response.output_item.added",
            output_index=self.message_index,
            item=message_item(item_id, None, "in_progress"),
        ) + self._event("response.content_part.added", **where, content_index=0, part=text_part(""))

    def _close_message(self, status: str) -> bytes:
        if self.text is None:
            return b""
        text = "".join(self.text)
        self.text = None
        item_id = f"msg_{self.rid}"
        where = {"item_id": item_id, "output_index": self.message_index, "content_index": 0}
        item = message_item(item_id, text, status)
        self.output[self.message_index] = item
        return (
            self._event("response.output_text.done", **where, text=text, logprobs=[])
            + self._event("response.content_part.done", **where, part=text_part(text))
            + self._event("response.output_item.done", output_index=self.message_index, item=item)
        )

    def _call_delta(self, tc: ToolCallDelta) -> bytes:
        out = b""
        call = self.calls.get(tc.index)
        if call is None:
            out += self._close_message("completed")
            item_id = f"fc_{self.rid}_{len(self.calls)}"
            call_id = tc.id or f"call_{self.rid}_{tc.index}"
            call = _Call(len(self.output), item_id, ToolCall(call_id, tc.name or "", ""))
            self.calls[tc.index] = call
            self.output.append({})
            item = function_call_item(item_id, call.call, "in_progress")
            out += self._event("response.output_item.added", output_index=call.index, item=item)
        elif tc.name:
            call.call.name += tc.name
        if tc.arguments:
            call.arguments.append(tc.arguments)
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=call.item_id,
                output_index=call.index,
                delta=tc.arguments,
            )
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for call in self.calls.values():
            call.call.arguments = "".join(call.arguments)
            item = function_call_item(call.item_id, call.call)
            self.output[call.index] = item
            out += self._event(
                "response.function_call_arguments.done",
                item_id=call.item_id,
                output_index=call.index,
                name=call.call.name,
                arguments=call.call.arguments,
            ) + self._event("response.output_item.done", output_index=call.index, item=item)
        self.calls = {}
        return out

    # -- the renderer protocol -------------------------------------------------------------

    def _native_items(self, items: list[dict[str, Any]]) -> bytes:
        """Items an upstream of this format sent as they are (reasoning), in order."""
        out = self._close_message("completed") + self._close_calls()
        for item in items:
            index = len(self.output)
            self.output.append(item)
            out += self._event("response.output_item.added", output_index=index, item=item)
            out += self._event("response.output_item.done", output_index=index, item=item)
        return out

    def delta(self, d: StreamDelta) -> bytes:
        out = b"" if self.started else self._start()
        if d.native:
            out += self._native_items(d.native)
        if d.usage is not None:
            self.usage = d.usage
        if d.finish_reason is not None:
            self.finish = d.finish_reason
        if d.content:
            if self.text is None:
                out += self._open_message()
            self.text.append(d.content)  # type: ignore[union-attr]
            out += self._event(
                "response.output_text.delta",
                item_id=f"msg_{self.rid}",
                output_index=self.message_index,
                content_index=0,
                delta=d.content,
                logprobs=[],
            )
        for tc in d.tool_calls or ():
            out += self._call_delta(tc)
        return out

    def end(self) -> bytes:
        out = b"" if self.started else self._start()
        if not self.output:  # an empty answer is still one (empty) message
            out += self._open_message()
        cut = self.finish in INCOMPLETE_REASON
        out += self._close_message("incomplete" if cut else "completed") + self._close_calls()
        final = self._response("completed", usage=self.usage, finish=self.finish)
        if self.on_done is not None:
            self.on_done(final)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return out + self._event(kind, response=final)

    def error(self, err: GatewayError) -> bytes:
        out = b"" if self.started else self._start()
        error = orjson.loads(render_error(err))["error"]
        out += self._event(
            "error", code=error["code"] or error["type"], message=err.message, param=err.param
        )
        failed = self._response(
            "failed", error={"code": error["code"] or "server_error", "message": err.message}
        )
        return out + self._event("response.failed", response=failed)
