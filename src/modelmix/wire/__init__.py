"""Wire formats: one package per vendor API, holding both directions of it.

Each package (``openai_chat``, ``openai_responses``, ``anthropic_messages``, ``gemini``) has up
to four modules:
``vocabulary`` (finish reasons and error types, one table each, read in both directions),
``client`` (the codec for clients speaking this API to the gateway: wire request ->
``ChatRequest``, ``ChatResponse``/stream -> wire bytes), ``upstream`` (the provider adapter:
``ChatRequest`` -> upstream request, upstream answer/stream -> canonical) and ``simulated``
(the simulated vendor's side, for the fake upstreams). ``common`` holds the neutral helpers the
adapters share (``openai_responses`` splits its client codec into ``request``, ``render`` and
``stream``). Nothing under ``wire`` imports ``modelmix.server``. See docs/architecture.md.
"""
