"""The one provider registry: one :class:`ProviderSpec` per provider a config may name.

A spec says everything modelmix knows about a provider: which wire adapter speaks to it
(``adapter``, a key of ``providers.registry.ADAPTERS``), its default base URL and API-key
variable, its id in the genai-prices catalog, its OpenTelemetry names and how its streams
are framed. ``config.py`` (which providers exist), ``portfolio.py`` (URL, key, framing),
``pricing.py`` (catalog id), ``tracing.py`` (span attributes) and the simulated upstream
(its path per wire format) all read it.

Adding a provider that speaks an existing wire format is one entry in ``PROVIDERS`` (or one
``register_provider`` call from a plugin module, before the config is parsed).

Pure data: importing this module imports no adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelmix.providers.base import StreamDecoder
from modelmix.providers.sse import SSEDecoder

__all__ = [
    "FRAMINGS",
    "PROVIDERS",
    "WIRE_PATHS",
    "ProviderSpec",
    "decoder_factory",
    "register_provider",
    "spec_for",
]

#: Stream framing name -> decoder factory (bytes in, events out). ``sse`` is
#: text/event-stream; a binary framing (AWS event-stream for Bedrock) registers here.
FRAMINGS: dict[str, Callable[[], StreamDecoder]] = {"sse": SSEDecoder}

#: Wire format (adapter kind) -> the path the simulated upstream serves it under.
WIRE_PATHS: dict[str, str] = {
    "openai": "/openai/v1",
    "openai-responses": "/openai/v1",  # POST /openai/v1/responses
    "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta",
}


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything modelmix knows about one provider."""

    #: The name a config's ``provider:`` uses.
    name: str
    #: Wire adapter kind (``openai``, ``openai-responses``, ``anthropic``, ``gemini``).
    adapter: str
    default_url: str
    #: Environment variable holding the key; None for local servers that need none.
    key_env: str | None = None
    #: genai-prices provider id used when the base URL matches no catalog pattern.
    price_id: str | None = None
    #: OpenTelemetry ``gen_ai.provider.name`` and ``gen_ai.system``.
    telemetry: tuple[str, str] | None = None
    #: Stream framing, a key of ``FRAMINGS``.
    framing: str = "sse"


def _openai_compatible(name: str, url: str, key_env: str | None) -> ProviderSpec:
    return ProviderSpec(name, "openai", url, key_env)


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            price_id="openai",
            telemetry=("openai", "openai"),
        ),
        # OpenAI's Responses API (/v1/responses): wire/openai_responses
        ProviderSpec(
            "openai-responses",
            "openai-responses",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            price_id="openai",
            telemetry=("openai", "openai"),
        ),
        ProviderSpec(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com/v1",
            "ANTHROPIC_API_KEY",
            price_id="anthropic",
            telemetry=("anthropic", "anthropic"),
        ),
        ProviderSpec(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            price_id="google",
            telemetry=("gcp.gemini", "gemini"),
        ),
        # OpenAI-compatible: the "openai" adapter with a default base URL and key variable
        # (their catalog prices are found by base URL).
        _openai_compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        _openai_compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        _openai_compatible("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        _openai_compatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        _openai_compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        _openai_compatible(
            "fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"
        ),
        _openai_compatible("vllm", "http://127.0.0.1:8000/v1", None),
        _openai_compatible("ollama", "http://127.0.0.1:11434/v1", None),
        _openai_compatible("llamacpp", "http://127.0.0.1:8080/v1", None),
        _openai_compatible("lmstudio", "http://127.0.0.1:1234/v1", None),
    )
}


def register_provider(spec: ProviderSpec) -> ProviderSpec:
    """Add (or replace) a provider; its adapter and framing must exist."""
    from modelmix.providers.registry import ADAPTERS

    if spec.adapter not in ADAPTERS:
        raise ValueError(f"provider {spec.name!r}: unknown wire adapter {spec.adapter!r}")
    if spec.framing not in FRAMINGS:
        raise ValueError(f"provider {spec.name!r}: unknown stream framing {spec.framing!r}")
    PROVIDERS[spec.name] = spec
    return spec


def spec_for(name: str) -> ProviderSpec:
    """The spec of provider ``name``; ``KeyError`` naming the known ones if there is none."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise KeyError(f"unknown provider {name!r} (known: {known})") from None


def decoder_factory(framing: str) -> Callable[[], StreamDecoder]:
    """The decoder factory of a stream framing."""
    return FRAMINGS[framing]
