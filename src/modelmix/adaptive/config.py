"""The ``adaptive:`` section of a route: latency limits, the price of a second, error limit.

```yaml
routes:
  - name: chat
    strategy: learned
    models: [fast, medium, large]
    learned: {quality_target: 0.95}
    adaptive:
      max_ttft_ms: 800        # predicted time to first token above this: passed over
      max_latency_ms: 4000    # predicted whole answer above this: passed over
      latency_weight: 0.002   # USD per second of predicted latency, added to the cost
      max_error_rate: 0.5     # recent error share above this: passed over
```

A model passed over is still called when nothing else can serve. Deployments with a
``capacity`` are passed over while that many requests are in flight on them, with or without
this section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: How the engine picks among a model's deployments (``balance:`` of a model).
Balance = Literal["weighted", "least_busy", "latency"]


class AdaptiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_ttft_ms: float | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    #: USD per second of predicted latency (a learned route adds it to each model's cost).
    latency_weight: float | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(default=None, gt=0, le=1)
