"""The ``cache:`` section of the YAML config.

cache:
  enabled: true
  backend: auto            # redis when state.redis_url is set, else memory
  scope: key               # or shared: one key's answers served to another key
  ttl: 300                 # seconds an answer is kept
  max_bytes: 67108864      # total size bound (memory and Redis alike)
  max_entry_bytes: 1048576 # larger answers are not cached
  any_temperature: false   # cache temperature > 0 too (else only with x-modelmix-cache: force)
  semantic:
    routes: [support]      # requested models / routes that may get a similar prompt's answer
    threshold: 0.95
    recent: 256
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CacheConfig", "SemanticCacheConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticCacheConfig(_Strict):
    #: Requested model or route names whose requests may be answered from a *similar* prompt
    #: (empty: the semantic cache is off everywhere).
    routes: list[str] = Field(default_factory=list)
    #: Cosine similarity of the prompts' hashed word n-gram vectors needed for a hit.
    threshold: float = Field(default=0.95, gt=0.5, le=1.0)
    #: How many recent prompts per route (and scope) are compared.
    recent: int = Field(default=256, ge=1, le=10_000)


class CacheConfig(_Strict):
    enabled: bool = False
    backend: Literal["auto", "memory", "redis"] = "auto"
    scope: Literal["key", "shared"] = "key"
    ttl: float = Field(default=300.0, gt=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_entry_bytes: int = Field(default=1024 * 1024, ge=256)
    any_temperature: bool = False
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)
