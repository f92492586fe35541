"""The ``state:`` section of the YAML config: where replicas share their counters.

state:
  redis_url: redis://redis:6379/0     # unset: counters stay on this host
  on_unavailable: fail_closed          # or fail_open
  prefix: mm                           # key prefix (several gateways on one Redis)
  timeout: 0.25                        # seconds per Redis command before it counts as down
  probe_interval: 0.5                  # seconds between reconnection attempts while down
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StateConfig"]


class StateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS). Unset: no Redis.
    redis_url: str | None = None
    #: While Redis is unreachable: ``fail_closed`` answers 503 to every request that a budget
    #: or a rate limit applies to; ``fail_open`` counts on this replica alone (its own
    #: counters, seeded from its ledger), flags those requests in the ledger
    #: (``decision.shared_state = "local"``) and in metrics, and goes back to Redis when it
    #: answers again.
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    prefix: str = Field(default="mm", min_length=1, max_length=64)
    timeout: float = Field(default=0.25, gt=0, le=30)
    probe_interval: float = Field(default=0.5, gt=0, le=60)
