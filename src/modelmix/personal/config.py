"""``quality.personal``: per user, key, team or tag calibration of the learned router.

```yaml
quality:
  personal: {enabled: true, prior_strength: 20, cap: 1.0, refresh_seconds: 30}
```

Off by default: then nothing is read or looked up and every request routes as before.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PersonalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: Prior strength in pseudo-observations: a subject with this many labelled requests
    #: moves halfway from the global router towards its own evidence.
    prior_strength: float = Field(default=20.0, gt=0)
    #: The largest offset (log-odds of P(good)) one subject's feedback can apply.
    cap: float = Field(default=1.0, gt=0, le=5)
    #: Seconds between refreshes of the offsets from the ledger (0: only at start-up).
    refresh_seconds: float = Field(default=30.0, ge=0)
    #: Only labelled requests of the last this many hours count.
    lookback_hours: float = Field(default=720.0, gt=0)
