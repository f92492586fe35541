"""The portfolio: the models a gateway can call, resolved from the config at start-up.

Resolution happens once: environment keys read, prices looked up in the catalog, the simulated
upstream's address filled in. Requests then only do dictionary look-ups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from modelmix.adaptive.config import QueueMetricsConfig
from modelmix.config import (
    SIMULATED_BASE_URL,
    Config,
    DeploymentConfig,
    ModelConfig,
)
from modelmix.pricing import PriceOverride, resolve_price
from modelmix.providers.base import Deployment
from modelmix.providers.specs import spec_for
from modelmix.types import Capabilities

log = logging.getLogger("modelmix.portfolio")


@dataclass(slots=True)
class ModelEntry:
    name: str
    provider: str  # adapter kind
    capabilities: Capabilities
    deployments: list[Deployment]
    description: str | None = None
    #: Why no deployment is usable (e.g. a missing key); None when the model can be called.
    unavailable: str | None = None
    owned_by: str = "modelmix"
    price_source: str | None = None
    #: ``chat`` or ``embedding`` (``POST /v1/embeddings`` only), and an embedding model's
    #: default vector length (issue 12).
    kind: str = "chat"
    dimensions: int | None = None


def _override(model: ModelConfig) -> PriceOverride | None:
    p = model.price
    if p is None:
        return None
    return PriceOverride(
        input=p.input,
        output=p.output,
        cached_input=p.cached_input,
        cache_write=p.cache_write,
        reasoning=p.reasoning,
    )


def queue_metrics_of(
    cfg: QueueMetricsConfig | None, base_url: str
) -> tuple[str, float, float] | None:
    """(URL, interval, timeout) of a deployment's queue metrics: a path is taken on the host
    of ``base_url`` (vLLM serves ``/metrics`` beside ``/v1``)."""
    if cfg is None:
        return None
    url = cfg.url
    if not url.startswith(("http://", "https://")):
        parts = urlsplit(base_url)
        url = f"{parts.scheme}://{parts.netloc}/{url.lstrip('/')}"
    return url, cfg.interval_s, cfg.timeout_s


def build_portfolio(
    config: Config,
    env: Mapping[str, str],
    simulated_base_url: Callable[[str], str] | None = None,
) -> dict[str, ModelEntry]:
    """Resolve every configured model into callable deployments.

    ``simulated_base_url(kind)`` gives the in-process simulator's URL for a wire format; models
    whose base_url is ``builtin:simulated`` need it.
    """
    portfolio: dict[str, ModelEntry] = {}
    for model in config.models:
        spec = spec_for(model.provider)
        kind, preset_url, preset_key_env = spec.adapter, spec.default_url, spec.key_env
        caps = Capabilities(**model.capabilities.model_dump(), unknown_params=model.params.unknown)
        override = _override(model)
        variants: list[DeploymentConfig | None] = list(model.deployments) or [None]
        deployments: list[Deployment] = []
        problems: list[str] = []
        for i, dep_cfg in enumerate(variants):
            base_url = (dep_cfg.base_url if dep_cfg else None) or model.base_url or preset_url
            key_env = (dep_cfg.api_key_env if dep_cfg else None) or model.api_key_env
            if key_env is None and base_url == preset_url:
                key_env = preset_key_env
            upstream = (dep_cfg.model if dep_cfg else None) or model.model or model.name
            headers = {**model.headers, **(dep_cfg.headers if dep_cfg else {})}
            weight = dep_cfg.weight if dep_cfg else model.weight
            if base_url == SIMULATED_BASE_URL:
                if simulated_base_url is None:
                    problems.append("the simulated upstream is not running")
                    continue
                base_url = simulated_base_url(kind)
            api_key = None
            if key_env:
                api_key = env.get(key_env)
                if not api_key:
                    problems.append(f"environment variable {key_env} is not set")
                    continue
            price = resolve_price(kind, upstream, base_url=base_url, override=override)
            deployments.append(
                Deployment(
                    id=f"{model.name}#{i}",
                    model=model.name,
                    provider=kind,
                    upstream_model=upstream,
                    base_url=base_url.rstrip("/"),
                    api_key=api_key,
                    headers=headers,
                    capabilities=caps,
                    price=price,
                    weight=weight,
                    framing=spec.framing,
                    capacity=(dep_cfg.capacity if dep_cfg else None) or model.capacity,
                    balance=model.balance,
                    queue_metrics=queue_metrics_of(
                        (dep_cfg.queue_metrics if dep_cfg else None) or model.queue_metrics,
                        base_url,
                    ),
                )
            )
        unavailable = None
        if not deployments:
            unavailable = "; ".join(problems) or "no deployment"
            log.warning("model %s is unavailable: %s", model.name, unavailable)
        portfolio[model.name] = ModelEntry(
            name=model.name,
            provider=kind,
            capabilities=caps,
            deployments=deployments,
            description=model.description,
            unavailable=unavailable,
            owned_by=model.provider,
            kind=model.kind,
            dimensions=model.dimensions,
            price_source=deployments[0].price.source
            if deployments and deployments[0].price
            else None,
        )
    return portfolio
