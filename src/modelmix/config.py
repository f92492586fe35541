"""The configuration file: one YAML document, validated by pydantic.

Unknown keys are errors, and every error names its dotted path (``models[2].capabilities.toolz``).
Secrets never appear in the file: a model names the environment variable that holds its key
(``api_key_env``), and the server reads the admin key the same way.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelmix.budgets.config import BudgetsConfig
from modelmix.paths import default_home
from modelmix.quality.config import QualityConfig, ShadowConfig
from modelmix.quality.config import cross_check as quality_cross_check
from modelmix.routing.route_config import CascadeRouteConfig, LearnedRouteConfig

ProviderKind = Literal[
    "openai",
    "anthropic",
    "gemini",
    "openai-responses",  # an upstream speaking the Responses API (wire/openai_responses)
    # OpenAI-compatible presets: the "openai" adapter with a default base URL and key variable.
    "openrouter",
    "groq",
    "together",
    "deepseek",
    "mistral",
    "fireworks",
    "vllm",
    "ollama",
    "llamacpp",
    "lmstudio",
]

#: preset -> (adapter kind, default base URL, default key variable)
PROVIDER_PRESETS: dict[str, tuple[str, str, str | None]] = {
    "openai": ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "gemini": (
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        "GEMINI_API_KEY",
    ),
    "openai-responses": ("openai-responses", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "openrouter": ("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "groq": ("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": ("openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "deepseek": ("openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "mistral": ("openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "fireworks": ("openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "vllm": ("openai", "http://127.0.0.1:8000/v1", None),
    "ollama": ("openai", "http://127.0.0.1:11434/v1", None),
    "llamacpp": ("openai", "http://127.0.0.1:8080/v1", None),
    "lmstudio": ("openai", "http://127.0.0.1:1234/v1", None),
}

#: A base_url of this value means "the simulated upstream modelmix starts in-process".
SIMULATED_BASE_URL = "builtin:simulated"


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


class DeploymentConfig(_Strict):
    """One more endpoint serving the same model (load balancing); unset fields inherit."""

    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    provider: ProviderKind
    #: Upstream model id; defaults to ``name``.
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    price: PriceConfig | None = None
    capabilities: CapabilitiesConfig = Field(default_factory=CapabilitiesConfig)
    weight: float = Field(default=1.0, gt=0)
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    description: str | None = None

    #: Present only so that an inline key gets a clear error instead of "unknown key".
    api_key: None = Field(default=None, exclude=True)

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
    name: str = Field(min_length=1)
    strategy: Literal["fallback", "rules", "learned", "cascade"] = "fallback"
    #: fallback: the ordered chain. rules: the chain used when no rule matches.
    #: learned: the candidates the router picks from. cascade: may be left empty.
    models: list[str] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    learned: LearnedRouteConfig | None = None
    cascade: CascadeRouteConfig | None = None
    #: Mirror a sample of this route's traffic to a candidate model (quality loop).
    shadow: ShadowConfig | None = None
    description: str | None = None
    #: The model this route's spend is compared against in savings reports (default: its
    #: most expensive model by output price).
    baseline: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> RouteConfig:
        if self.rules and self.strategy != "rules":
            raise ValueError("rules are only allowed with strategy: rules")
        if self.learned is not None and self.strategy != "learned":
            raise ValueError("learned settings are only allowed with strategy: learned")
        if self.cascade is not None and self.strategy != "cascade":
            raise ValueError("cascade settings are only allowed with strategy: cascade")
        if self.strategy == "cascade":
            if self.cascade is None:
                raise ValueError("strategy: cascade needs a cascade section (voters, strong)")
        elif not self.models and not self.rules:
            raise ValueError("a route needs models (and, with strategy: rules, rules)")
        return self

    def all_models(self) -> list[str]:
        """Every model this route may call."""
        names = [*self.models, *(m for rule in self.rules for m in rule.models)]
        if self.cascade is not None:
            names += self.cascade.models()
        if self.learned is not None:
            names += list(self.learned.profiles)
        return names


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


class LedgerConfig(_Strict):
    #: SQLite file; default ``<data_dir>/ledger.db``.
    path: str | None = None
    batch_size: int = Field(default=512, ge=1)
    flush_interval: float = Field(default=0.2, gt=0)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Environment variable holding the admin key (full access, also valid as a client key).
    admin_key_env: str | None = None
    #: Require a key (admin or virtual) on every API call. When unset, keys are required as
    #: soon as an admin key is configured or any virtual key exists.
    require_api_key: bool | None = None


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
    #: Where the ledger lives by default; ``$MODELMIX_HOME`` or ``./.modelmix`` when unset.
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
        if route.baseline is not None and route.baseline not in names:
            errors.append(f"routes[{i}].baseline: unknown model {route.baseline!r}")
    for model in config.budgets.rate_limits.models:
        if model not in names:
            errors.append(f"budgets.rate_limits.models.{model}: unknown model")
    errors += quality_cross_check(config)
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
