"""State shared by several gateway replicas (hosts): budgets and rate limits in Redis.

One host already shares its counters between worker processes through a memory-mapped file
(``budgets/shared.py``). Replicas on different hosts share them through Redis instead, when the
config has ``state: {redis_url: ...}``: ``redis_counters.py`` holds the ``SpendStore`` and
``BucketStore`` on Redis (Lua scripts, so several replicas cannot overspend) and what happens
while Redis is unreachable (``state.on_unavailable``). See docs/deploy.md.
"""

from modelmix.state.config import StateConfig

__all__ = ["StateConfig"]
