"""The response cache: answers served again without calling an upstream.

- ``config.py``: the ``cache:`` section (off by default).
- ``request_key.py``: what makes two requests the same (the normalised request hash) and when
  a request may be cached at all (``temperature > 0`` only when asked).
- ``stores.py``: where entries live: this process (LRU, TTL, byte bound) or Redis (shared by
  replicas; the same bounds, enforced by a Lua script).
- ``semantic.py``: the opt-in per-route similarity look-up over recent prompts.
- ``hooks.py``: ``ResponseCache``, the two calls the request path makes (one before the
  engine, one after), cache hits as ledger rows (cost 0, ``saved_usd``) and replayed streams.
"""

from modelmix.cache.config import CacheConfig

__all__ = ["CacheConfig"]
