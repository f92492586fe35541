"""Config pieces for learned and cascade routes (hooked into ``RouteConfig`` by config.py).

```yaml
routes:
  - name: smart
    strategy: learned
    models: [small, medium, large]
    learned: {artifact: default, quality_target: 0.95, max_cost: 0.01}
  - name: any-portfolio
    strategy: learned
    models: [a, b]
    learned: {quality_target: 0.95, profiles: {a: 0.6, b: 0.85}}
  - name: checked
    strategy: cascade
    models: [small, mini, large]          # every model the cascade may call
    cascade:
      voters: [small, mini]
      strong: [large]
      need: 2
      verifiers: [refusal, answer]
      artifact: default                   # optional: learned gate
      quality_target: 0.98
  - name: staged
    strategy: cascade
    models: []
    cascade:
      staged: true                        # stages and gate come from the artifact
      artifact: default
      quality_target: 1.0                 # or lam: 0.05 (USD per unit of quality)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelmix.routing.verifiers import KNOWN_VERIFIERS

if TYPE_CHECKING:
    from modelmix.portfolio import ModelEntry
    from modelmix.routing.strategy import Strategy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LearnedRouteConfig(_Strict):
    #: Path of a router artifact (``modelmix router train``), or ``default`` (shipped).
    artifact: str = "default"
    #: Keep this share of the best model's quality at the lowest cost.
    quality_target: float | None = Field(default=None, gt=0, le=1.0)
    #: USD per request: models predicted to cost more are not chosen.
    max_cost: float | None = Field(default=None, gt=0)
    #: Willingness to pay, USD per unit of quality (overrides quality_target).
    wtp: float | None = Field(default=None, gt=0)
    #: Per-model quality in [0, 1] for models the artifact was not trained on.
    profiles: dict[str, float] = Field(default_factory=dict)
    #: Take the profiles from an eval run's matrix in the ledger: ``eval:<run id>`` (explicit
    #: ``profiles`` win); resolved when the gateway starts (``modelmix eval profiles``).
    profiles_from: str | None = Field(default=None, pattern=r"^eval:.+")

    @field_validator("profiles")
    @classmethod
    def _in_unit(cls, v: dict[str, float]) -> dict[str, float]:
        for name, q in v.items():
            if not 0.0 < q < 1.0:
                raise ValueError(f"profile of {name!r} must be between 0 and 1")
        return v


class CascadeRouteConfig(_Strict):
    #: Staged cascade: the stages, the answer tables and the gain gate come from ``artifact``
    #: (``modelmix router train``); the knob is ``quality_target`` or ``lam``.
    staged: bool = False
    #: Price of quality for a staged cascade, USD per unit of quality (overrides the target).
    lam: float | None = Field(default=None, gt=0)
    voters: list[str] = Field(default_factory=list)
    strong: list[str] = Field(default_factory=list)
    #: Accept when this many voters give the same final answer.
    need: int = Field(default=2, ge=1)
    verifiers: list[str] = Field(default_factory=lambda: ["refusal", "answer"])
    #: Reject an answer whose mean token probability is below this (when logprobs exist).
    min_logprob: float | None = Field(default=None, gt=0, lt=1)
    #: Optional learned gate: an artifact trained with these voters.
    artifact: str | None = None
    quality_target: float | None = Field(default=None, gt=0, le=1.0)
    gate_threshold: float | None = Field(default=None, ge=0, le=1)
    #: Optional LLM judge asked before escalating an answer the voters did not agree on.
    judge: str | None = None
    judge_threshold: float = Field(default=0.8, ge=0, le=1)

    @field_validator("verifiers")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in KNOWN_VERIFIERS]
        if bad:
            raise ValueError(f"unknown verifier(s) {bad}; known: {list(KNOWN_VERIFIERS)}")
        return v

    @model_validator(mode="after")
    def _gate(self) -> CascadeRouteConfig:
        if self.staged:
            return self
        if not self.voters:
            raise ValueError("a cascade needs voters (or staged: true with an artifact)")
        if self.lam is not None:
            raise ValueError("lam is the knob of a staged cascade (staged: true)")
        if (
            self.quality_target is not None or self.gate_threshold is not None
        ) and not self.artifact:
            raise ValueError("quality_target / gate_threshold need an artifact (a learned gate)")
        return self

    def models(self) -> list[str]:
        """Every model the cascade may call (for the config's unknown-model check)."""
        return [*self.voters, *self.strong, *([self.judge] if self.judge else [])]


def build_learned(
    name: str, models: list[str], cfg: LearnedRouteConfig, portfolio: Mapping[str, ModelEntry]
) -> Strategy:
    """The ``LearnedStrategy`` of a ``strategy: learned`` route (loads its artifact once)."""
    from modelmix.routing.learned.artifact import load_artifact
    from modelmix.routing.learned.strategy import LearnedStrategy

    return LearnedStrategy(
        name,
        models,
        load_artifact(cfg.artifact),
        portfolio=portfolio,
        quality_target=cfg.quality_target,
        max_cost=cfg.max_cost,
        wtp=cfg.wtp,
        profiles=cfg.profiles or None,
    )


def build_cascade(
    name: str, cfg: CascadeRouteConfig, portfolio: Mapping[str, ModelEntry]
) -> Strategy:
    """The ``CascadeStrategy`` of a ``strategy: cascade`` route."""
    from modelmix.routing.cascade import CascadeStrategy, StagedCascadeStrategy
    from modelmix.routing.learned.artifact import load_artifact

    if cfg.staged:
        return StagedCascadeStrategy(
            name,
            load_artifact(cfg.artifact or "default"),
            portfolio=portfolio,
            quality_target=cfg.quality_target,
            lam=cfg.lam,
            verifiers=cfg.verifiers,
            min_logprob=cfg.min_logprob,
        )
    return CascadeStrategy(
        name,
        cfg.voters,
        cfg.strong,
        portfolio=portfolio,
        artifact=load_artifact(cfg.artifact) if cfg.artifact else None,
        need=cfg.need,
        quality_target=cfg.quality_target,
        gate_threshold=cfg.gate_threshold,
        verifiers=cfg.verifiers,
        min_logprob=cfg.min_logprob,
        judge=cfg.judge,
        judge_threshold=cfg.judge_threshold,
    )
