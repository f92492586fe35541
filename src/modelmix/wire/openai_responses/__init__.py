"""The OpenAI Responses API (``/v1/responses``), both directions.

* ``request``: a client's Responses body -> canonical ``ChatRequest`` (items, instructions,
  function tools and their outputs, ``text.format``, reasoning effort), with the original body
  kept as ``ResponsesRequest`` on ``ChatRequest.responses`` for an upstream that speaks Responses.
* ``render`` / ``stream``: a canonical answer -> the Response object and its SSE event sequence.
* ``store``: stored responses (``store``, ``previous_response_id``, ``GET``/``DELETE``) in the
  ledger database.
* ``endpoint``: the hooks the chat endpoint calls, and the retrieve/delete routes.
* ``upstream``: the provider adapter for an upstream that speaks Responses (pass-through).
* ``simulated``: the simulated upstream's ``/openai/v1/responses``.
"""
