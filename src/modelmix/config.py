"""The configuration file: one YAML document, validated by pydantic.

Unknown keys are errors, and every error names its dotted path (``models[2].capabilities.toolz``).
Secrets never appear in the file: a model names the environment variable that holds its key
(``api_key_env``), and the server reads the admin key the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from modelmix.adaptive.config import AdaptiveConfig, Balance, ExploreConfig, QueueMetricsConfig
from modelmix.budgets.config import BudgetsConfig
from modelmix.cache.config import CacheConfig
from modelmix.embeddings.checks import cross_check as embedding_cross_check
from modelmix.paths import default_home
from modelmix.providers.specs import PROVIDERS
from modelmix.quality.config import QualityConfig, ShadowConfig
from modelmix.quality.config import cross_check as quality_cross_check
from modelmix.routing.registry import STRATEGIES
from modelmix.routing.route_config import CascadeRouteConfig, LearnedRouteConfig
from modelmix.state.config import StateConfig

#: A base_url of this value means "the simulated upstream modelmix starts in-process".
SIMULATED_BASE_URL = "builtin:simulated"


def _registered(what: str, value: str, registry: Mapping[str, object]) -> str:
    """``value`` if the registry has it, else a ValueError listing what it has."""
    if value not in registry:
        raise ValueError(f"unknown {what} {value!r}; expected one of {list(registry)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceConfig(_Strict):
    """USD per million tokens; overrides the genai-prices catalog for this model."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)
    reasoning: Decimal | None = Field(default=None, ge=0)


class CapabilitiesConfig(_Strict):
    tools: bool = True
    vision: bool = False
    json_object: bool = True
    json_schema: bool = True
    streaming: bool = True
    context_window: int = Field(default=128_000, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    #: issue 12: takes a reasoning effort (an Anthropic client's ``thinking`` maps to it).
    reasoning: bool = False


class ParamsConfig(_Strict):
    """issue 12: what a request field modelmix does not know becomes at this model when the
    model does not speak the client's wire format (same format: always sent unchanged)."""

    unknown: Literal["pass", "refuse", "drop"] = "refuse"


class DeploymentConfig(_Strict):
    """One more endpoint serving the same model (load balancing); unset fields inherit."""

    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    #: Requests this deployment serves at once (unset: the model's ``capacity``).
    capacity: int | None = Field(default=None, ge=1)
    #: The server's own queue gauges (unset: the model's ``queue_metrics``; adaptive/queue.py).
    queue_metrics: QueueMetricsConfig | None = None


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    #: A provider of the registry (``providers/specs.py``).
    provider: str
    #: Upstream model id; defaults to ``name``.
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    price: PriceConfig | None = None
    capabilities: CapabilitiesConfig = Field(default_factory=CapabilitiesConfig)
    #: issue 12: unknown request fields (``params: {unknown: pass|refuse|drop}``).
    params: ParamsConfig = Field(default_factory=ParamsConfig)
    weight: float = Field(default=1.0, gt=0)
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    description: str | None = None
    #: Requests each deployment serves at once; beyond it routes spill over (adaptive/).
    capacity: int | None = Field(default=None, ge=1)
    #: Deployment choice: weighted (random by weight), least_busy, latency (adaptive/).
    balance: Balance = "weighted"
    #: Poll the server's queue gauges (vLLM ``/metrics``) against ``capacity`` (adaptive/).
    queue_metrics: QueueMetricsConfig | None = None
    #: issue 12 (embeddings): ``embedding`` models serve ``POST /v1/embeddings`` only; their
    #: price is ``input`` per 1M tokens (``output`` may be left out), ``dimensions`` the
    #: length of their vectors when a request names none.
    kind: Literal["chat", "embedding"] = "chat"
    dimensions: int | None = Field(default=None, gt=0)

    #: Present only so that an inline key gets a clear error instead of "unknown key".
    api_key: None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _embedding_price(cls, data: Any) -> Any:
        """An embedding model's price needs no ``output`` (it produces no tokens)."""
        if isinstance(data, dict) and data.get("kind") == "embedding":
            price = data.get("price")
            if isinstance(price, dict) and "output" not in price:
                data = {**data, "price": {**price, "output": 0}}
        return data

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        return _registered("provider", value, PROVIDERS)

    @field_validator("api_key", mode="before")
    @classmethod
    def _no_inline_key(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "inline API keys are not allowed; name the environment variable with api_key_env"
            )
        return None


class RuleWhen(_Strict):
    """All given conditions must hold for the rule to match."""

    #: Request metadata (``metadata`` field or ``x-modelmix-tag-*`` headers) must equal these.
    metadata: dict[str, str] = Field(default_factory=dict)
    #: The request has tools (True) or has none (False).
    tools: bool | None = None
    #: The request contains images.
    images: bool | None = None
    #: The request asks for JSON output (json_object or json_schema).
    json_output: bool | None = None
    #: Estimated prompt tokens at least / below this.
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    #: The client is streaming.
    stream: bool | None = None


class RuleConfig(_Strict):
    when: RuleWhen
    models: list[str] = Field(min_length=1)


class RouteConfig(_Strict):
    """One route. ``strategy`` names a registered strategy (``routing/registry.py``), whose
    spec validates the route's settings section (the key named after it) and builds it."""

    name: str = Field(min_length=1)
    strategy: str = "fallback"
    #: fallback: the ordered chain. rules: the chain used when no rule matches.
    #: learned: the candidates the router picks from. cascade: may be left empty.
    models: list[str] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    learned: LearnedRouteConfig | None = None
    cascade: CascadeRouteConfig | None = None
    #: The settings section of a strategy registered by another module (its key in the
    #: config is the strategy's name; validated with the spec's settings class).
    options: SerializeAsAny[BaseModel] | None = None
    #: Mirror a sample of this route's traffic to a candidate model (quality loop).
    shadow: ShadowConfig | None = None
    description: str | None = None
    #: The model this route's spend is compared against in savings reports (default: its
    #: most expensive model by output price).
    baseline: str | None = None
    #: Latency limits and the price of a second (adaptive/config.py).
    adaptive: AdaptiveConfig | None = None
    #: Online exploration of candidate models with guardrails (adaptive/config.py).
    explore: ExploreConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _plugin_section(cls, data: Any) -> Any:
        """A registered strategy's own section (``toy: {...}``) goes to ``options``."""
        if isinstance(data, dict):
            spec = STRATEGIES.get(data.get("strategy", "fallback"))
            if spec is not None and spec.name not in cls.model_fields and spec.name in data:
                data = dict(data)
                raw = data.pop(spec.name)
                data["options"] = spec.settings.model_validate(raw) if spec.settings else raw
        return data

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        return _registered("strategy", value, STRATEGIES)

    @model_validator(mode="after")
    def _shape(self) -> RouteConfig:
        spec = STRATEGIES[self.strategy]
        for other in STRATEGIES:  # a strategy's section only goes with that strategy
            if other != self.strategy and other in type(self).model_fields and getattr(self, other):
                raise ValueError(f"{other} settings are only allowed with strategy: {other}")
        if spec.settings_required and self.settings is None:
            raise ValueError(f"strategy: {spec.name} needs a {spec.name} section")
        if not spec.models_optional and not self.models and not self.rules:
            raise ValueError("a route needs models (and, with strategy: rules, rules)")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``options`` is dumped under the strategy's name, as the config wrote it."""
        data: dict[str, Any] = handler(self)
        if "options" in data:
            options = data.pop("options")
            if options is not None:
                data[self.strategy] = options
        return data

    @property
    def settings(self) -> Any:
        """The settings section of this route's strategy (None when absent)."""
        if self.strategy in type(self).model_fields:
            return getattr(self, self.strategy)
        return self.options

    def all_models(self) -> list[str]:
        """Every model this route may call, each once (exploration's candidates too: a budget
        reserves the worst case of the dearest, so exploring never takes a request past a
        budget)."""
        names = [*self.models, *(m for rule in self.rules for m in rule.models)]
        if self.explore is not None:
            names += [m for m in self.explore.candidates if m not in names]
        spec = STRATEGIES[self.strategy]
        settings = self.settings
        if settings is not None and spec.settings_models is not None:
            names += spec.settings_models(settings)
        return list(dict.fromkeys(names))  # each once, in first-named order


class TimeoutsConfig(_Strict):
    connect: float = Field(default=5.0, gt=0)
    first_token: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)


class CooldownConfig(_Strict):
    #: After this many consecutive failures a deployment rests for ``seconds``.
    failures: int = Field(default=3, ge=1)
    seconds: float = Field(default=30.0, ge=0)


class EngineConfig(_Strict):
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    #: Retries of one model (on its deployments) before falling back to the next model.
    retries: int = Field(default=1, ge=0, le=10)
    backoff_base: float = Field(default=0.1, ge=0)
    backoff_max: float = Field(default=4.0, ge=0)
    #: A Retry-After longer than this is not waited for: fall back instead.
    max_retry_after: float = Field(default=10.0, ge=0)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)
    #: Seconds after which a deployment's latest latency news counts half (adaptive/live.py).
    live_half_life: float = Field(default=10.0, gt=0)


class LedgerConfig(_Strict):
    #: SQLite file; default ``<data_dir>/ledger.db``.
    path: str | None = None
    #: A PostgreSQL ledger instead of the SQLite file: ``postgresql://user@host:5432/db``
    #: (libpq also reads ``PGPASSWORD`` / ``~/.pgpass``, so the password need not be here).
    url: str | None = None
    batch_size: int = Field(default=512, ge=1)
    flush_interval: float = Field(default=0.2, gt=0)
    #: SIGKILL-safe: commit every request's row before its answer goes out (slower; see
    #: ``benchmarks/ledger_sync.py``). Default: batched commits every ``flush_interval``.
    synchronous: bool = False

    @model_validator(mode="after")
    def _one_place(self) -> LedgerConfig:
        if self.url is not None:
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise ValueError("ledger.url must be a postgresql:// URL")
            if self.path is not None:
                raise ValueError("give ledger.path (SQLite) or ledger.url (PostgreSQL), not both")
        return self


class LimitsConfig(_Strict):
    """Bounds on what one client request may make the gateway hold, send or store (issue 14;
    ``docs/security.md``). Each has a safe default; every refusal is a 4xx in the client's
    own API format."""

    #: Request line plus headers, bytes (HTTP 431 above it; checked as bytes arrive).
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    #: Request metadata items plus ``x-modelmix-tag-*`` headers (each becomes a ledger tag).
    max_tags: int = Field(default=32, ge=0)
    #: Length of a tag's name / value, characters.
    max_tag_name_chars: int = Field(default=64, ge=1)
    max_tag_value_chars: int = Field(default=512, ge=1)
    #: The OpenAI ``user`` field / Anthropic ``metadata.user_id``, characters.
    max_user_chars: int = Field(default=256, ge=1)
    #: One upstream answer's body, bytes, streams included (502 / a stream error event).
    max_upstream_response_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Environment variable holding the admin key (full access, also valid as a client key).
    admin_key_env: str | None = None
    #: Require a key (admin or virtual) on every API call. When unset, keys are required as
    #: soon as an admin key is configured or any virtual key exists.
    require_api_key: bool | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    #: Keyless mode only: browser origins (``https://app.example``) allowed to call the API;
    #: others, and requests without a JSON content type, get 403 / 415 (``docs/security.md``).
    allowed_origins: list[str] = Field(default_factory=list)
    #: On SIGTERM, in-flight requests get this many seconds; then open streams end with an
    #: error event and their ledger rows are written.
    shutdown_deadline: float = Field(default=30.0, gt=0)


class MetricsConfig(_Strict):
    #: Serve Prometheus metrics at GET /metrics.
    enabled: bool = True
    #: Require the admin key on /metrics (Prometheus: ``authorization: Bearer ...``). Unset:
    #: required whenever an admin key is configured.
    require_admin_key: bool | None = None


class TracingConfig(_Strict):
    """OpenTelemetry spans over OTLP/HTTP; needs ``pip install 'modelmix[otel]'``."""

    enabled: bool = False
    #: Full OTLP/HTTP traces URL (http://collector:4318/v1/traces); unset: the standard
    #: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT variables.
    endpoint: str | None = None
    service_name: str = "modelmix"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)


class Config(_Strict):
    #: Where the ledger lives by default; unset: ``$MODELMIX_HOME``, else the per-user data
    #: directory (``$XDG_DATA_HOME/modelmix`` or ``~/.local/share/modelmix``).
    data_dir: str | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    #: Budgets (global, per team, per tag; key budgets live on the keys) and rate limits.
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    #: State shared by replicas on several hosts (Redis): budgets, rate limits (state/).
    state: StateConfig = Field(default_factory=StateConfig)
    #: The response cache (cache/): exact, and semantic on the routes that opt in.
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for m in models:
            if m.name in seen:
                raise ValueError(f"model name {m.name!r} is defined twice")
            seen.add(m.name)
        return models

    @property
    def ledger_location(self) -> str | Path:
        """Where the ledger lives: ``ledger.url`` (PostgreSQL) or the SQLite file."""
        return self.ledger.url or self.ledger_path

    @property
    def ledger_local_path(self) -> Path:
        """The file that what stays on this host is named after (the budget counters beside
        the ledger): the SQLite file, or for a PostgreSQL ledger a name made from its URL in
        the data directory (gateways on one host and one ledger share it)."""
        if not self.ledger.url:
            return self.ledger_path
        digest = hashlib.sha256(self.ledger.url.encode()).hexdigest()[:12]
        return (Path(self.data_dir) if self.data_dir else default_home()) / f"pg-{digest}.db"

    @property
    def ledger_path(self) -> Path:
        if self.ledger.path:
            return Path(self.ledger.path)
        return (Path(self.data_dir) if self.data_dir else default_home()) / "ledger.db"

    def hash(self) -> str:
        """A short, stable hash of the active configuration, stamped on every ledger row."""
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` lists ``"dotted.path: message"`` lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _format_validation_error(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _dotted(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {msg}")
    return lines


def _cross_check(config: Config) -> list[str]:
    """Errors that span sections: routes naming unknown models, name clashes."""
    names = {m.name for m in config.models}
    errors: list[str] = []
    seen: set[str] = set()
    for i, route in enumerate(config.routes):
        if route.name in names:
            errors.append(f"routes[{i}].name: {route.name!r} is also a model name")
        if route.name in seen:
            errors.append(f"routes[{i}].name: route {route.name!r} is defined twice")
        seen.add(route.name)
        for j, model in enumerate(route.models):
            if model not in names:
                errors.append(f"routes[{i}].models[{j}]: unknown model {model!r}")
        for k, rule in enumerate(route.rules):
            for j, model in enumerate(rule.models):
                if model not in names:
                    errors.append(f"routes[{i}].rules[{k}].models[{j}]: unknown model {model!r}")
        if route.cascade is not None:
            for part in ("voters", "strong"):
                for j, model in enumerate(getattr(route.cascade, part)):
                    if model not in names:
                        errors.append(f"routes[{i}].cascade.{part}[{j}]: unknown model {model!r}")
            if route.cascade.judge is not None and route.cascade.judge not in names:
                errors.append(f"routes[{i}].cascade.judge: unknown model {route.cascade.judge!r}")
        if route.learned is not None:
            for model in route.learned.profiles:
                if model not in names:
                    errors.append(f"routes[{i}].learned.profiles.{model}: unknown model")
        if route.explore is not None and STRATEGIES[route.strategy].summed_cost:
            errors.append(
                f"routes[{i}].explore: a {route.strategy} route calls several models for one "
                "answer; it cannot explore single candidates"
            )
        for j, model in enumerate(route.explore.candidates if route.explore else ()):
            if model not in names:
                errors.append(f"routes[{i}].explore.candidates[{j}]: unknown model {model!r}")
        if route.baseline is not None and route.baseline not in names:
            errors.append(f"routes[{i}].baseline: unknown model {route.baseline!r}")
    for i, m in enumerate(config.models):
        for j, d in enumerate(m.deployments):
            if (d.queue_metrics or m.queue_metrics) and not (d.capacity or m.capacity):
                errors.append(f"models[{i}].deployments[{j}].queue_metrics: needs a capacity")
        if m.queue_metrics and not m.capacity and not m.deployments:
            errors.append(f"models[{i}].queue_metrics: needs a capacity")
    for model in config.budgets.rate_limits.models:
        if model not in names:
            errors.append(f"budgets.rate_limits.models.{model}: unknown model")
    errors += quality_cross_check(config)
    errors += embedding_cross_check(config)  # issue 12
    return errors


def parse_config(data: Any, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): the file must hold a mapping"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _format_validation_error(exc)) from None
    errors = _cross_check(config)
    if errors:
        raise ConfigError(source, errors)
    return config


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"(file): cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(p), [f"(yaml): {exc}"]) from None
    return parse_config(data, str(p))
