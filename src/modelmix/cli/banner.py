"""What ``modelmix serve`` tells a newcomer at start: where it listens, its models (and which
are simulated), its routes, the dashboard URL and whether it needs a key, and the ledger."""

from __future__ import annotations

import os
from collections.abc import Mapping

from modelmix.config import SIMULATED_BASE_URL, Config, ModelConfig
from modelmix.providers.specs import spec_for
from modelmix.server.auth import DEFAULT_ADMIN_KEY_ENV


def _where(model: ModelConfig, env: Mapping[str, str]) -> str:
    spec = spec_for(model.provider)
    urls = [d.base_url for d in model.deployments] or [model.base_url]
    if SIMULATED_BASE_URL in urls:
        return f"SIMULATED ({spec.adapter} wire format, in-process upstream)"
    base = model.base_url or spec.default_url
    key = model.api_key_env or (spec.key_env if base == spec.default_url else None)
    if key and not env.get(key):
        return f"unavailable: ${key} is not set"
    return base or "?"


def model_lines(config: Config, env: Mapping[str, str]) -> list[str]:
    width = max((len(m.name) for m in config.models), default=0)
    return [f"  {m.name:<{width}}  {m.kind:<9}  {_where(m, env)}" for m in config.models]


def route_lines(config: Config) -> list[str]:
    width = max((len(r.name) for r in config.routes), default=0)
    return [
        f"  {r.name:<{width}}  {r.strategy:<8}  {', '.join(r.all_models()) or '(all models)'}"
        for r in config.routes
    ]


def auth_line(config: Config, env: Mapping[str, str], virtual_keys: bool) -> str:
    """How the API and the dashboard are protected (mirrors ``server.auth``)."""
    name = config.server.admin_key_env or DEFAULT_ADMIN_KEY_ENV
    if env.get(name):
        return f"keys: on (admin key from ${name}); the dashboard needs the admin key"
    if config.server.require_api_key or virtual_keys:
        return "keys: on (virtual keys); the dashboard needs an admin key (none is set)"
    return (
        "keys: off (no admin key, no virtual keys): the API and the dashboard are open on "
        f"loopback without a key; set ${name} to turn keys on"
    )


def banner(
    config: Config,
    host: str,
    port: int,
    *,
    virtual_keys: bool,
    access_log: bool,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    env = os.environ if env is None else env
    url = f"http://{host}:{port}"
    return [
        "models:",
        *model_lines(config, env),
        "routes:",
        *(route_lines(config) or ["  (none: ask for a model by name)"]),
        f"dashboard: {url}/ui",
        auth_line(config, env, virtual_keys),
        f"ledger: {config.ledger_path.resolve()} (modelmix logs / report read it from anywhere)",
        "access log: " + ("on (--no-access-log to turn it off)" if access_log else "off"),
    ]
