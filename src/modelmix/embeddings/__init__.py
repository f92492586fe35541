"""Embeddings: ``POST /v1/embeddings`` (OpenAI format) over the portfolio's embedding models.

``types.py`` holds the canonical request and answer and the adapter protocol; the wire formats
live beside their chat siblings (``wire/openai_chat/embeddings.py``, ``wire/gemini/embeddings.py``);
``run.py`` is the lifecycle (record, admission, fallback over embedding models, ledger).
"""
