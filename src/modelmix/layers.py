"""The package layers of modelmix, bottom to top: which modules may import which.

A module belongs to the layer of the longest entry naming it or a package above it (``"routing"``
covers every module under ``routing/``; ``"routing.registry"`` overrides that), so a new module
lands in its package's layer without an edit here. A module may import modules of its own layer
and of the layers below it, never above. ``tests/test_package_layers.py`` checks every module's
imports against this table (function-level imports too; ``if TYPE_CHECKING:`` ones are not
imports at run time) and that no imports form a cycle; ``docs/architecture.md`` ("Package
layers") explains the order. Nothing imports this module at run time.
"""

from __future__ import annotations

__all__ = ["LATE_BOUND", "LAYERS", "layer_of"]

#: (layer, entries), bottom first. Entries are module or package names under ``modelmix``;
#: the package's own ``__init__`` (only ``__version__``) is in the bottom layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "errors",
            "paths",
            "tokens",
            "prompt_chunks",
            "request_facts",
            "types",
            "stats",
            "estimated_usage",
            "layers",
            "embeddings.types",  # canonical embedding request/response (agent-misc)
        ),
    ),
    ("wire", ("wire", "providers", "simulated")),
    (
        "config",
        (
            "config",
            # config sections that live beside the code they configure:
            "budgets.config",
            "budgets.definitions",
            "budgets.limits",
            "budgets.errors",
            "quality.config",
            "routing.registry",
            "routing.route_config",
            "routing.verifiers",  # route_config validates a cascade's verifier names
            "evals.dataset",  # quality.config's preflight loads the golden set
            # sections of packages other branches add (adaptive, agent-misc, redis-state):
            "adaptive.config",
            "cache.config",
            "embeddings.checks",
            "state.config",
            "personal.config",  # quality.config's personal section (issue 15)
        ),
    ),
    ("portfolio", ("portfolio", "pricing", "defaults", "budgets.degrade")),
    ("routing", ("routing", "personal.estimator", "personal.offsets")),
    ("budgets/ledger", ("budgets", "ledger", "metrics", "tracing", "state")),
    ("engine", ("engine", "adaptive", "cache", "embeddings")),
    ("quality/evals", ("evals", "quality", "reports", "bench", "personal")),
    ("gateway", ("gateway",)),
    ("server", ("server", "dashboard")),
    ("cli", ("cli", "__main__")),
)

#: Imports allowed although they point up or close a cycle: late-bound plugin lookups, each a
#: function-level import, as (importer, imported) ``fnmatch`` patterns of module names.
LATE_BOUND: tuple[tuple[str, str, str], ...] = (
    (
        "routing.registry",
        "routing.strategy",
        "the strategy registry's builders for the built-in strategies import their strategy "
        "when a route is built (routing.strategy imports the registry)",
    ),
    (
        "routing.route_config",
        "routing.learned.*",
        "the learned and cascade builders import their strategy and artifact loader when a "
        "route is built; the config layer never runs them",
    ),
    ("routing.route_config", "routing.cascade", "the cascade builder, as above"),
    (
        "simulated.app",
        "wire.*",
        "the simulated upstream looks up the wire formats it serves when the app is built "
        "(their simulated sides import the simulator's vocabulary, whose package re-exports "
        "the app)",
    ),
    (
        "simulated.app",
        "simulated.embeddings",
        "the simulated embeddings handler is looked up when the app is built, like the wire "
        "formats above (it records into the app's state)",
    ),
    (
        "routing.strategy",
        "adaptive.plan",
        "the latency and capacity wrapper (issue 15) is applied when a route is built; it reads "
        "the engine's live per-deployment estimates, so it sits in the engine layer",
    ),
    (
        "routing.strategy",
        "adaptive.explore",
        "the exploration wrapper (issue 15, item 4) is applied when a route is built, on top of "
        "the latency and capacity wrapper it reuses the limits of",
    ),
)

_INDEX = {entry: i for i, (_, entries) in enumerate(LAYERS) for entry in entries}


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of ``module`` (``modelmix.x.y``); ``None`` if no entry covers it."""
    name = module.removeprefix("modelmix").lstrip(".")
    if not name:
        return 0
    while name:
        if name in _INDEX:
            return _INDEX[name]
        name = name.rpartition(".")[0]
    return None
