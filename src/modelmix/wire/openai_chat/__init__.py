"""OpenAI Chat Completions (``/v1/chat/completions``): client codec, upstream adapter, vocabulary
and the simulated vendor side. Importing the package loads none of them."""
