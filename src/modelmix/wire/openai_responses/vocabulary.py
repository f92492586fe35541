"""OpenAI Responses vocabulary: why a response is ``incomplete``, one table read both ways.

A Response has no finish reason: a cut answer has ``status: "incomplete"`` and
``incomplete_details.reason``. The render and stream codecs write the reason for a canonical
finish reason (``INCOMPLETE_REASON``), the upstream adapter and the simulated side read it
back (``FINISH_REASON``); a finish reason absent from the table is a ``completed`` response.
Errors are OpenAI's (``wire/openai_chat/vocabulary.py``).
"""

from __future__ import annotations

from modelmix.types import FinishReason
from modelmix.wire.common import both_ways

__all__ = ["FINISH_REASON", "INCOMPLETE_REASON", "INCOMPLETE_REASONS"]

#: ``incomplete_details.reason`` <-> canonical finish reason.
INCOMPLETE_REASONS: tuple[tuple[str, FinishReason], ...] = (
    ("max_output_tokens", "length"),
    ("content_filter", "content_filter"),
)
FINISH_REASON, INCOMPLETE_REASON = both_ways(INCOMPLETE_REASONS)
