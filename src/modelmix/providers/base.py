"""What every provider adapter offers, and the deployment it talks to.

An adapter is a set of *pure* functions over one upstream wire format: it turns a canonical
``ChatRequest`` into an ``HttpRequest``, and the upstream's bytes back into a canonical
``ChatResponse`` or a stream of ``StreamDelta``. It never does I/O; ``providers.http`` does the
I/O for every adapter alike, and the engine decides what to call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from modelmix.errors import UnsupportedParameter
from modelmix.types import Capabilities, ChatRequest, ChatResponse, StreamDelta

if TYPE_CHECKING:
    from modelmix.errors import UpstreamError
    from modelmix.pricing import Price


@dataclass(slots=True)
class Deployment:
    """One concrete upstream endpoint serving a model.

    A model name that clients use (``model``) may have several deployments (load balancing);
    ``id`` is unique across the portfolio, e.g. ``"gpt-4o-mini#0"``.
    """

    id: str
    model: str
    provider: str  # adapter kind: "openai" | "anthropic" | "gemini"
    upstream_model: str
    base_url: str  # no trailing slash; e.g. "https://api.openai.com/v1"
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)
    price: Price | None = None
    weight: float = 1.0
    #: Stream framing of the provider (``providers.specs.FRAMINGS``).
    framing: str = "sse"
    #: Requests it serves at once; more are spilled to the route's next model (adaptive/).
    capacity: int | None = None
    #: How the engine picks among a model's deployments (adaptive/config.py ``Balance``).
    balance: str = "weighted"
    #: The server's Prometheus metrics URL and poll interval (adaptive/queue.py), or None.
    queue_metrics: tuple[str, float, float] | None = None


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event: ``event`` is None when the stream sent no ``event:`` line."""

    data: str
    event: str | None = None


class StreamDecoder(Protocol):
    """A stream framing: raw response bytes in, the events they complete out (one instance
    per stream). ``providers.sse.SSEDecoder`` is text/event-stream; a provider's spec names
    its framing (``providers.specs.FRAMINGS``)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def flush(self) -> list[SSEEvent]:
        """The events completed by the end of the body."""
        ...


class StreamParser(Protocol):
    """Turns one upstream stream's events into canonical deltas; one instance per stream."""

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        """Parse one event. Raises ``UpstreamError`` on an error event or malformed data."""
        ...

    def finished(self) -> bool:
        """True once the upstream said the stream is complete (e.g. ``[DONE]``,
        ``message_stop``, or Gemini's last chunk with a finishReason). A stream whose
        connection closes before ``finished()`` is a cut stream."""
        ...


def check_base64_data_url(url: str) -> None:
    """Refuse (``UnsupportedParameter``) a ``data:`` URL whose payload is not base64."""
    comma = url.find(",")  # no copy of the (possibly huge) data
    if comma < 0 or ";base64" not in url[5:comma]:
        raise UnsupportedParameter("messages", "image data URL must be base64-encoded")


def has_turn(messages: list[dict[str, Any]]) -> bool:
    """True when ``messages`` hold a user, assistant or tool turn with something in it. Anthropic
    and Gemini take system prompts apart from the conversation and refuse an empty one."""
    for message in messages:
        role = message.get("role")
        if role == "tool" or (role == "assistant" and message.get("tool_calls")):
            return True
        if role in ("user", "assistant"):
            content = message.get("content")
            if isinstance(content, str):
                if content:
                    return True
            elif content and any(p.get("type") != "text" or p.get("text") for p in content):
                return True
    return False


class ProviderAdapter(Protocol):
    """Pure translation between canonical types and one upstream wire format."""

    kind: str

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        """Raise ``UnsupportedParameter`` for any part of ``request`` (a parameter or message
        content) this wire format, at ``deployment``, cannot honour: never drop it silently.
        Routing calls it before choosing a model, so it must stay cheap (no translation)."""
        ...

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        """The HTTP request to send; streams when ``request.stream`` is true (and then asks
        the upstream for usage in the stream where the format allows)."""
        ...

    def parse_response(self, body: bytes) -> ChatResponse:
        """Parse a 2xx non-streamed body. Raises ``UpstreamError("bad_response")`` when
        the body is not what the format promises."""
        ...

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """Classify a non-2xx answer (kind, message from the body, Retry-After)."""
        ...

    def stream_parser(self) -> StreamParser: ...
