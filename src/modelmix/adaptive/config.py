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

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: How the engine picks among a model's deployments (``balance:`` of a model).
Balance = Literal["weighted", "least_busy", "latency"]


class AdaptiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_ttft_ms: float | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    #: USD per second of predicted latency (a learned route adds it to each model's cost).
    latency_weight: float | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(default=None, gt=0, le=1)


class ExploreConfig(BaseModel):
    """The ``explore:`` section of a route: online learning with guardrails (issue 15, item 4).

    ```yaml
    routes:
      - name: chat
        strategy: fallback
        models: [medium, large]
        explore:
          share: 0.05             # at most this share of the route's requests explores
          method: thompson        # or uniform
          candidates: [small]     # default: the route's models
          prior: [1, 1]           # Beta prior of each candidate's acceptance
          min_samples: 30         # labelled requests per arm before a promotion is proposed
          confidence: 0.95        # P(candidate beats the default) that proposes a canary
          canary_share: 0.1       # the canary's share of traffic (its guardrails decide)
          max_cost: 0.002         # USD per request: a candidate predicted dearer is not explored
    ```

    A candidate is explored only within the route's limits: not while any budget of the
    request is under pressure, not above ``max_cost``, and not when the ``adaptive:`` limits
    (capacity, ``max_ttft_ms``, ``max_latency_ms``, ``max_error_rate``) pass it over.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(default=0.05, gt=0, le=0.5)
    #: ``thompson`` (draw from each posterior, call the highest) or ``uniform`` (any eligible
    #: candidate alike: the baseline of benchmarks/online_exploration.py).
    method: Literal["thompson", "uniform"] = "thompson"
    candidates: list[str] = Field(default_factory=list)
    prior: tuple[float, float] = (1.0, 1.0)
    min_samples: int = Field(default=30, ge=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    #: Propose a canary when a candidate's posterior beats the default's (fallback and rules
    #: routes: the default is their first model).
    promote: bool = True
    canary_share: float = Field(default=0.1, gt=0, lt=1)
    max_cost: float | None = Field(default=None, gt=0)
    #: Seed of the exploration's random draws (tests, benchmarks); None: fresh each start.
    seed: int | None = None

    @field_validator("prior")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError("prior: both Beta parameters must be positive")
        return v


class QueueMetricsConfig(BaseModel):
    """``queue_metrics:`` of a model or deployment: poll an OpenAI-compatible server's
    Prometheus metrics (vLLM's ``vllm:num_requests_running`` and ``vllm:num_requests_waiting``)
    off the request path. While running + waiting reaches the deployment's ``capacity`` it is
    passed over like one with that many requests in flight from this gateway.

    ```yaml
    models:
      - name: own-llama
        provider: openai
        base_url: http://gpu-box:8000/v1
        capacity: 8
        queue_metrics: {url: /metrics, interval_s: 1}   # a path: on the base_url's host
    ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: An absolute URL, or a path on the host of the deployment's ``base_url``.
    url: str = Field(default="/metrics", min_length=1)
    interval_s: float = Field(default=2.0, ge=0.05)
    timeout_s: float = Field(default=1.0, gt=0)
