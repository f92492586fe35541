"""Routing policies as versioned documents, and the router serving one or two of them.

A policy is the config's ``routes`` section. Its version is a hash of the canonical JSON of the
routes (defaults left out, so a version names what was written): the same routes always give
the same version. A policy file is YAML with a ``routes:`` list exactly as in the config; it is
validated against the running config's models (errors name their dotted path, like the
config's).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from modelmix.config import Config, ConfigError, RouteConfig, parse_config
from modelmix.evals.matrix import profiles as matrix_profiles
from modelmix.evals.store import EvalStore
from modelmix.portfolio import ModelEntry
from modelmix.routing.canary import CanaryStrategy, VersionedStrategy
from modelmix.routing.strategy import Router

Document = dict[str, Any]


def routes_document(routes: Sequence[RouteConfig]) -> Document:
    return {"routes": [r.model_dump(mode="json", exclude_defaults=True) for r in routes]}


def version_of(document: Document) -> str:
    canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


def document_yaml(document: Document) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


def diff(a: Document, b: Document, name_a: str, name_b: str) -> str:
    """A unified diff of two policies' YAML."""
    lines = difflib.unified_diff(
        document_yaml(a).splitlines(keepends=True),
        document_yaml(b).splitlines(keepends=True),
        fromfile=name_a,
        tofile=name_b,
    )
    return "".join(lines)


def validate_routes(config: Config, routes: object, source: str) -> list[RouteConfig]:
    """The routes of a policy, checked against ``config``'s models; raises ``ConfigError``."""
    if not isinstance(routes, list):
        raise ConfigError(source, ["routes: expected a list of routes"])
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["routes"] = routes
    try:
        return list(parse_config(data, source).routes)
    except ConfigError as exc:
        only = [e for e in exc.errors if e.startswith("routes") or e.startswith("quality")]
        raise ConfigError(source, only or exc.errors) from None


def load_policy_file(config: Config, path: str | Path) -> list[RouteConfig]:
    """A policy file: YAML with a ``routes:`` list (a whole config file works too: only its
    routes are read)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(p), [f"(file): cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), [f"(yaml): {exc}"]) from None
    if not isinstance(data, dict) or "routes" not in data:
        raise ConfigError(str(p), ["(top level): a policy file holds a mapping with routes:"])
    return validate_routes(config, data["routes"], str(p))


def with_eval_profiles(routes: Sequence[RouteConfig], evals: EvalStore) -> list[RouteConfig]:
    """Routes with ``learned.profiles_from: eval:<run>`` given that run's profiles (explicit
    ``profiles`` win); raises ``ValueError`` when the run lacks one of the route's models."""
    out: list[RouteConfig] = []
    for route in routes:
        learned = route.learned
        if learned is None or learned.profiles_from is None:
            out.append(route)
            continue
        run = learned.profiles_from.removeprefix("eval:")
        found = matrix_profiles(evals.cells(run))
        models = route.models or list(found)
        missing = [m for m in models if m not in found and m not in learned.profiles]
        if missing:
            raise ValueError(
                f"route {route.name!r}: eval run {run!r} has no results for "
                f"{', '.join(missing)} (modelmix eval run ... --run {run})"
            )
        profiles = {m: found[m] for m in models if m in found} | dict(learned.profiles)
        new_learned = learned.model_copy(update={"profiles": profiles})
        out.append(route.model_copy(update={"learned": new_learned}))
    return out


def build_router(
    portfolio: Mapping[str, ModelEntry],
    stable: Sequence[RouteConfig],
    stable_version: str,
    candidate: Sequence[RouteConfig] | None = None,
    candidate_version: str | None = None,
    share: float = 0.0,
    sticky: str = "session",
) -> Router:
    """The router for the live policy, with a canary of ``candidate`` on ``share`` of the
    traffic of every route the two versions define differently."""
    router = Router(stable, portfolio)
    if candidate is None or candidate_version is None:
        return router
    other = Router(candidate, portfolio)
    before = {r.name: r for r in stable}
    for route in candidate:
        name = route.name
        if name not in before:  # a new route: only the candidate has it
            router.routes[name] = VersionedStrategy(other.routes[name], candidate_version)
        elif before[name] != route:
            router.routes[name] = CanaryStrategy(
                name,
                router.routes[name],
                other.routes[name],
                stable_version=stable_version,
                candidate_version=candidate_version,
                share=share,
                sticky=sticky,
            )
    return router
