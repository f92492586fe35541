"""The ``quality:`` section of the config, and a route's ``shadow:`` option.

```yaml
quality:
  capture: {sample: 1.0}                 # store prompts and answers (replay, retraining)
  judge: {model: sim-large, sample: 0.2} # judge a share of live answers in the background
  canary: {min_samples: 50, quality_margin: 0.05, max_cost_increase: 0.1}
  probes: {enabled: true, golden: golden.jsonl, every_seconds: 3600}
  alarms: {enabled: true, webhook_url_env: ALARM_WEBHOOK}
routes:
  - name: smart
    models: [a, b]
    shadow: {model: c, sample: 0.1}      # mirror 10% of smart's traffic to c, judged vs live
```

Everything is off by default: with no ``quality`` section and no ``shadow``, the request path
does not change at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelmix.personal.config import PersonalConfig

if TYPE_CHECKING:
    from modelmix.config import Config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShadowConfig(_Strict):
    """Mirror a sample of a route's live requests to a candidate, off the request path."""

    #: The candidate: a model (or route) name.
    model: str = Field(min_length=1)
    #: Share of the route's successful requests mirrored.
    sample: float = Field(default=0.1, gt=0, le=1)
    #: The judge comparing the two answers; default ``quality.judge.model``.
    judge: str | None = None


class CaptureConfig(_Strict):
    #: Share of live requests whose prompt and answer are stored (table ``samples``).
    sample: float = Field(default=0.0, ge=0, le=1)
    #: Longer prompts or answers are cut to this many characters.
    max_chars: int = Field(default=20_000, ge=100)


class JudgeConfig(_Strict):
    #: The judge: a model (or route) name.
    model: str = Field(min_length=1)
    #: Share of live answers judged in the background (0: the judge only serves shadows,
    #: canaries' guardrails still use feedback).
    sample: float = Field(default=0.0, ge=0, le=1)
    #: What a good answer is, for the judge's prompt.
    rubric: str | None = None


class CanaryConfig(_Strict):
    """Guardrails deciding a canary (see ``quality/canary.py``)."""

    #: Seconds between checks.
    check_seconds: float = Field(default=10.0, gt=0)
    #: Observations per arm needed before a guardrail can pass or fail.
    min_samples: int = Field(default=50, ge=5)
    #: Chance of a wrong decision over all ``max_looks`` checks (split evenly across them).
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    max_looks: int = Field(default=20, ge=1)
    #: The candidate passes when its quality is shown to be no more than this below stable.
    quality_margin: float = Field(default=0.05, ge=0, le=1)
    #: ... its error rate no more than this above stable's ...
    error_margin: float = Field(default=0.02, ge=0, le=1)
    #: ... and its mean cost per request no more than this share above stable's.
    max_cost_increase: float = Field(default=0.1, ge=0)


class ProbesConfig(_Strict):
    """Golden-set probes: the same items sent to every model on a schedule."""

    enabled: bool = False
    #: A JSONL dataset (the ``modelmix eval run`` format).
    golden: str | None = None
    #: Models probed (default: every available model).
    models: list[str] = Field(default_factory=list)
    every_seconds: float = Field(default=3600.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _needs_golden(self) -> ProbesConfig:
        if self.enabled and not self.golden:
            raise ValueError("probes need a golden dataset (golden: path.jsonl)")
        return self


class AlarmsConfig(_Strict):
    """Regression alarms: quality drops beyond noise, silent behaviour shifts."""

    enabled: bool = False
    check_seconds: float = Field(default=60.0, gt=0)
    #: Only observations of the last this many hours are read.
    lookback_hours: float = Field(default=168.0, gt=0)
    #: The most recent observations compared with everything before them.
    window: int = Field(default=30, ge=5)
    #: Observations needed before the window to compare with.
    min_baseline: int = Field(default=30, ge=5)
    #: At most this many observations before the window form the baseline.
    baseline: int = Field(default=500, ge=5)
    #: Significance of each test (one-sided for quality and refusals).
    alpha: float = Field(default=0.001, gt=0, lt=0.5)
    #: A quality drop smaller than this is not worth an alarm, however significant.
    min_drop: float = Field(default=0.1, ge=0, le=1)
    #: Output length alarms need the median to move by this factor (and the rank test).
    length_ratio: float = Field(default=1.5, gt=1)
    #: Refusal rate alarms need the rate to rise by at least this much.
    min_refusal_rise: float = Field(default=0.1, ge=0, le=1)
    #: POST each alarm as JSON to this URL (or to the URL in this environment variable).
    webhook_url: str | None = None
    webhook_url_env: str | None = None


class PolicyConfig(_Strict):
    #: Seconds between checks for policy changes made by ``modelmix policy`` (0: never;
    #: changes then apply when the gateway restarts).
    poll_seconds: float = Field(default=5.0, ge=0)


class QualityConfig(_Strict):
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    judge: JudgeConfig | None = None
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    #: Personalised routing (issue 15): per-subject offsets on the learned router.
    personal: PersonalConfig = Field(default_factory=PersonalConfig)
    #: Background judge and shadow calls in flight at most; more are dropped (under load the
    #: quality loop sheds its own work, never the clients').
    max_background: int = Field(default=8, ge=1, le=1024)


def preflight(config: Config) -> list[str]:
    """Problems a serving gateway would hit at start-up, found before it starts: the probes'
    golden dataset must load."""
    probes = config.quality.probes
    if not probes.enabled or probes.golden is None:
        return []
    from modelmix.evals.dataset import EvalDataError, load_dataset

    try:
        load_dataset(probes.golden)
    except EvalDataError as exc:
        return [f"quality.probes.golden: {line}" for line in exc.errors]
    return []


def cross_check(config: Config) -> list[str]:
    """Errors naming models the quality settings refer to but the config does not define."""
    names = {m.name for m in config.models} | {r.name for r in config.routes}
    quality = config.quality
    errors: list[str] = []
    if quality.judge is not None and quality.judge.model not in names:
        errors.append(f"quality.judge.model: unknown model {quality.judge.model!r}")
    for j, model in enumerate(quality.probes.models):
        if model not in names:
            errors.append(f"quality.probes.models[{j}]: unknown model {model!r}")
    for i, route in enumerate(config.routes):
        shadow = route.shadow
        if shadow is None:
            continue
        if shadow.model not in names:
            errors.append(f"routes[{i}].shadow.model: unknown model {shadow.model!r}")
        if shadow.judge is not None and shadow.judge not in names:
            errors.append(f"routes[{i}].shadow.judge: unknown model {shadow.judge!r}")
        if shadow.judge is None and quality.judge is None:
            errors.append(
                f"routes[{i}].shadow.judge: a shadow needs a judge (set it, or quality.judge)"
            )
    return errors
