"""Canonical request, response and stream types.

Every wire format (OpenAI Chat Completions, Anthropic Messages, Gemini generateContent) is
translated to and from these types, so the engine and the routing layer see one shape.

The canonical shape follows OpenAI Chat Completions, the lingua franca of the field:

* ``ChatRequest.messages`` are OpenAI chat messages (plain dicts): roles ``system``,
  ``developer``, ``user``, ``assistant`` and ``tool``; ``content`` is a string or a list of
  parts (``{"type": "text", "text": ...}``, ``{"type": "image_url", "image_url": {"url": ...}}``);
  assistant messages may carry ``tool_calls`` (``[{"id", "type": "function", "function":
  {"name", "arguments"}}]``) and tool messages carry ``tool_call_id``.
* ``ChatRequest.tools`` is the OpenAI ``tools`` list (``[{"type": "function", "function":
  {"name", "description", "parameters"}}]``), ``tool_choice`` the OpenAI value (``"auto"``,
  ``"none"``, ``"required"`` or ``{"type": "function", "function": {"name": ...}}``).
* ``finish_reason`` is one of ``stop``, ``length``, ``tool_calls``, ``content_filter``.

These are plain dataclasses with slots, not pydantic models: they sit on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modelmix.request_facts import RequestFacts

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

#: Sampling parameters the canonical request understands, beyond messages/tools/format.
#: ``max_tokens`` is the canonical name (OpenAI's ``max_completion_tokens`` maps to it, and
#: ``ChatRequest.max_tokens_name`` remembers which one the client used); ``stop`` is always a
#: list of strings.
SAMPLING_PARAMS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "n",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
)


@dataclass(slots=True)
class ChatRequest:
    """One chat request, whatever API the client spoke."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    #: Only keys from SAMPLING_PARAMS, only those the client actually set.
    params: dict[str, Any] = field(default_factory=dict)
    #: The name the client gave ``params["max_tokens"]``: an OpenAI-compatible upstream gets
    #: the same one (OpenAI's reasoning models refuse ``max_tokens``).
    max_tokens_name: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: OpenAI ``stream_options.include_usage``: send a final usage chunk to the client.
    include_usage: bool = False
    #: Free-form string tags from the client (OpenAI ``metadata``, Anthropic ``metadata``,
    #: ``x-modelmix-*`` headers); routing rules may look at them.
    metadata: dict[str, str] = field(default_factory=dict)
    #: Fields the client sent that the canonical request does not know (dotted path ->
    #: value; null values are never kept): an upstream speaking the client's format gets them
    #: unchanged, any other follows the model's ``params.unknown`` (see wire/extensions.py).
    unknown: dict[str, Any] | None = None
    #: The client's own body, for an upstream that speaks the client's format (passthrough).
    native: NativeRequest | None = None
    #: The client's request in its own wire format, when an upstream may speak that format
    #: natively (the Responses API: ``wire/openai_responses``); its adapter sends it as is.
    responses: Any = None

    #: Lazily derived facts (see ``request_facts.py``); not an init field, so
    #: ``dataclasses.replace`` gives the new request fresh facts.
    _facts: RequestFacts | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def facts(self) -> RequestFacts:
        """This request's derived facts, created on first use."""
        if self._facts is None:
            self._facts = RequestFacts(self)
        return self._facts


@dataclass(slots=True)
class NativeRequest:
    """A request as the client sent it, kept so an upstream speaking the same wire format gets
    it byte for byte (thinking signatures, ``cache_control``, betas, fields modelmix does not
    know), while any other upstream gets the canonical translation (wire/extensions.py)."""

    #: The client API (``ApiFormat.name``), which is also the upstream adapter kind it suits.
    api: str
    body: dict[str, Any]
    #: Client headers the upstream must see too (``anthropic-beta``).
    headers: dict[str, str] = field(default_factory=dict)
    #: Client features the canonical request cannot carry, each with what an upstream of
    #: another format does with it: name -> (handling, why). Handling is ``drop`` (answered
    #: without it, noted on the ledger row), ``refuse`` (that model is skipped, and the
    #: request refused when none is left) or ``reasoning`` (``thinking``: reasoning effort
    #: where the model reasons, else dropped and noted).
    features: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    """Token counts of one upstream call.

    ``cached_tokens`` and ``cache_write_tokens`` are the parts of ``prompt_tokens`` read from
    and written to the provider's prompt cache; ``reasoning_tokens`` is the part of
    ``completion_tokens`` spent on hidden reasoning. ``prompt_tokens`` always counts *all*
    input tokens (Anthropic reports cache reads/writes outside ``input_tokens``; its adapter
    adds them back in).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    #: JSON text, exactly as the model produced it.
    arguments: str


@dataclass(slots=True)
class ChatResponse:
    """One complete (non-streamed, or fully accumulated) answer."""

    id: str
    #: The model id the upstream reports having used.
    model: str
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    #: Unix seconds.
    created: int = 0
    #: OpenAI-style ``logprobs`` object when the upstream returned one (for verifiers).
    logprobs: Any = None
    #: OpenAI ``system_fingerprint`` when present.
    system_fingerprint: str | None = None
    #: The upstream's own response body, when it speaks the client's format (passthrough):
    #: the client gets it as is (thinking blocks and their signatures included).
    raw: dict[str, Any] | None = None
    #: The upstream's output items when it spoke the client's wire format (the Responses
    #: API): reasoning items and all reach the client unchanged.
    native: Any = None


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call; ``index`` identifies the call across deltas.

    The first delta of a call carries ``id`` and ``name``; later ones carry only
    ``arguments`` fragments.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamDelta:
    """One canonical streaming event.

    Upstream stream parsers produce these; client-facing stream renderers consume them.
    A delta may carry any combination of fields; ``finish_reason`` marks the end of the
    choice and ``usage`` (usually on the last delta) the call's token counts.
    """

    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    #: Upstream response id / model, when the event reveals them (first event usually).
    id: str | None = None
    model: str | None = None
    logprobs: Any = None
    #: The upstream's own SSE event bytes, when it speaks the client's format (passthrough):
    #: the client's renderer sends these instead of rendering the canonical fields.
    raw: bytes | None = None
    #: Finished upstream output items in the client's wire format that have no canonical form
    #: (Responses reasoning items), handed to a renderer of the same format before this delta.
    native: Any = None


@dataclass(slots=True)
class Capabilities:
    """What a model can do; the routing layer never sends a request to a model lacking it."""

    tools: bool = True
    vision: bool = False
    json_object: bool = True
    json_schema: bool = True
    streaming: bool = True
    context_window: int = 128_000
    max_output_tokens: int | None = None
    #: Takes a reasoning effort (OpenAI ``reasoning_effort``, Gemini thinking budget): an
    #: Anthropic client's ``thinking`` becomes one here, and is dropped (noted) elsewhere.
    reasoning: bool = False
    #: What a field the client sent and modelmix does not know becomes when this model does
    #: not speak the client's format: ``refuse`` (400 naming field and model), ``drop``
    #: (noted on the ledger row) or ``pass`` (sent to the upstream as is).
    unknown_params: str = "refuse"
