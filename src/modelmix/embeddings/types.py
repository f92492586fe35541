"""The canonical embeddings request and answer, and what an embeddings adapter offers.

Plain dataclasses like ``modelmix.types``: every wire format is translated to and from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from modelmix.types import Usage

if TYPE_CHECKING:
    from modelmix.errors import UpstreamError
    from modelmix.providers.base import Deployment, HttpRequest


@dataclass(slots=True)
class EmbeddingRequest:
    """One embeddings request: ``inputs`` are texts (OpenAI's ``input`` as a list)."""

    model: str
    inputs: list[str]
    #: ``float`` (a JSON list) or ``base64`` (little-endian float32, as OpenAI sends it).
    encoding_format: str = "float"
    #: Output dimensions asked for (models that can shorten their vectors).
    dimensions: int | None = None
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: The client sent cl100k token arrays (``inputs`` then holds their text): an
    #: OpenAI-compatible upstream gets them as sent, Gemini gets the text.
    token_inputs: list[list[int]] | None = None


@dataclass(slots=True)
class EmbeddingResponse:
    """One vector per input, in input order, and the call's usage."""

    vectors: list[list[float]]
    usage: Usage = field(default_factory=Usage)


class EmbeddingAdapter(Protocol):
    """Pure functions over one upstream embeddings wire format (no I/O)."""

    def build_request(self, request: EmbeddingRequest, deployment: Deployment) -> HttpRequest: ...

    def parse_response(self, body: bytes, request: EmbeddingRequest) -> EmbeddingResponse: ...

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError: ...
