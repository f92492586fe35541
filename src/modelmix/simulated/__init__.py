"""A simulated upstream: fake OpenAI, Anthropic and Gemini APIs speaking the real wire formats.

It has two users: the zero-key demo (``modelmix serve`` with no config serves the models
``sim-small``, ``sim-medium`` and ``sim-large`` from it; every text answer starts with
``[simulated <model>]``), and tests, which pick the upstream's behaviour by model name.

Endpoints, under ``http://HOST:PORT``:

* OpenAI Chat Completions: ``POST /openai/v1/chat/completions``, ``GET /openai/v1/models``
  (base URL ``/openai/v1``).
* Anthropic Messages: ``POST /anthropic/v1/messages``, ``POST
  /anthropic/v1/messages/count_tokens``, ``GET /anthropic/v1/models`` (the Anthropic SDK
  appends ``/v1/messages``: give it ``base_url=sim.url + "/anthropic"``). With ``thinking``
  enabled or adaptive an answer starts with a signed ``thinking`` block; a later request must
  send it back unchanged (a changed text or signature is a 400, as at Anthropic) and, in a tool
  loop, first in its last assistant turn. ``cache_control`` breakpoints cache the prompt up to
  them: a later request with the same bytes up to a breakpoint reads them
  (``cache_read_input_tokens``; see ``prompt_cache.py``). A ``system`` role among the messages
  is a 400 unless the ``anthropic-beta`` header names ``mid-conversation-system``.
* OpenAI Responses: ``POST /openai/v1/responses``, JSON and SSE events (a ``reasoning`` item
  first when the request sets ``reasoning.effort``; ``sim.base_url("openai-responses")``;
  wire/openai_responses/simulated.py).
* Gemini: ``POST /gemini/v1beta/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse``, ``GET /gemini/v1beta/models`` (base ``/gemini/v1beta``).

Every response carries ``X-Modelmix-Simulated: true``. ``Simulator.calls`` counts calls per
model name and ``Simulator.requests`` keeps the last 64 requests (headers and parsed body),
for tests to inspect what an adapter really sent.

Requests are validated as the vendor would (missing ``messages`` or ``max_tokens``, no
``anthropic-version`` header, a ``system`` role in Anthropic messages, a Gemini role other
than user/model, etc.: vendor-format 400). Any API key, or none, is accepted, except the
key ``invalid``: 401.

Behaviour grammar
-----------------
The model name is split on ``-`` (or ``_``), case-insensitively; each token below switches a
behaviour on, every other token is only part of the name (``sim-small``, ``gpt-4o``...).
Tokens combine: ``sim-slow50-cut``, ``sim-flaky2-cached100``.

``429`` / ``500`` / ``503`` / ``529``
    Every call fails with that status and the vendor's error body (429 with
    ``Retry-After: 1``; 529 is Anthropic's ``overloaded_error``).
``flaky<N>``
    The first N calls for this exact model name fail with 500; later ones succeed. The
    counter is per simulator: ``Simulator.reset()`` starts it again.
``slow<ms>``
    Wait ``ms`` before any response (errors too); streams also wait ``ms`` before each chunk.
``ttft<ms>``
    Wait ``ms`` before the first content: the response (non-streamed) or the first chunk
    (streamed; headers are sent at once).
``timeout``
    Sleep an hour before answering: far longer than any client timeout.
``reset``
    Abort the TCP connection (RST) without any response.
``cut``
    Streamed: send about half the chunks, then drop the connection without the terminator.
    Non-streamed: announce the full ``Content-Length``, send half the body, then drop.
``malformed``
    200 with a body that is not JSON; streamed: SSE ``data`` that is not JSON.
``cached<N>``
    Report N cached prompt tokens on top of the prompt's own estimate, in the vendor's
    usage shape (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic
    ``cache_read_input_tokens``, Gemini ``cachedContentTokenCount``).
``refuse``
    Answer with a refusal text.

Quality (what evals, judges, canaries and alarms in tests measure):

``small`` / ``medium`` / ``large``
    Model sizes: arithmetic with more than 2 (small) or 3 (medium) operators comes out wrong,
    off by one; ``large`` gets every sum right. ``skill<N>`` sets the bound directly.
``acc<P>``
    Right on P% of prompts (decided per model and prompt: the same prompt always gets the
    same verdict).
``noise<P>``
    Wrong on P% of calls, decided per call from the model's call counter: a stationary but
    noisy quality.
``wrongafter<N>``
    After N calls (per exact model name, like ``flaky``) every sum comes out wrong: a model
    that degrades at a known point.
``updateafter<N>``
    After N calls the model is silently updated: OpenAI ``system_fingerprint`` becomes
    ``fp_simulated_v2`` and every text answer grows a long extra sentence (answers stay right).
``refuseafter<N>``
    After N calls every other answer (even call numbers) is a refusal.

A grading prompt (Markdown sections ``## Question``, optionally ``## Reference answer``, and
``## Answer to grade`` or ``## Answer A`` / ``## Answer B``: what ``modelmix.evals.judge``
writes) is answered as a judge would, with JSON only: ``{"score": N}`` or ``{"a": N, "b": N}``,
0 to 10; the simulated judge checks the arithmetic itself (with its own skill).

Answers
-------
Deterministic: the same prompt and model give the same answer. With tools (and tool choice
not "none") and a last message that is not a tool result: the call the prompt spells out
(``call tool NAME with {"json": "arguments"}`` at the end of a line), else a call to the
forced tool, else to the first one, with arguments synthesised from its JSON schema; with more
than 8 tools (an agent's toolbox, e.g. Claude Code's) a tool is called only when forced or
spelled out. After a tool result: text
mentioning it. JSON mode: a JSON object; a JSON schema: an object valid against it.
Otherwise ``[simulated <model>] ...``: simple arithmetic is computed ("What is 2+2?" ->
``2 + 2 = 4``; wrong as the quality tokens say), else the last user message is echoed
briefly. ``max_tokens`` truncates (finish reason length / max_tokens / MAX_TOKENS), stop
sequences cut. Tokens are estimated at four characters each (at least one). Streams send the
text about a word per chunk and tool arguments in a few fragments (Gemini: a whole
``functionCall`` part, as Gemini does).

Run it standalone with ``python -m modelmix.simulated --port 9999``.
"""

from modelmix.simulated.app import (
    DEMO_MODELS,
    SIMULATED_HEADER,
    RecordedRequest,
    Simulator,
    create_app,
    start_simulator,
)
from modelmix.simulated.behaviour import Behaviour, parse_behaviour

__all__ = [
    "DEMO_MODELS",
    "SIMULATED_HEADER",
    "Behaviour",
    "RecordedRequest",
    "Simulator",
    "create_app",
    "parse_behaviour",
    "start_simulator",
]
