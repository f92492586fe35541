"""Regression alarms: a model (or route) got worse beyond noise, or changed silently.

Series, oldest first, per subject (``model:<name>`` or ``route:<name>``) and source:

* ``probe``: golden-set probe results (quality, output length, refusals, fingerprint);
* ``live``: judge scores and client feedback on live answers (quality, per model and per
  route), and captured live answers (length, refusals, fingerprint).

Each check compares the most recent ``window`` observations of a series with up to
``baseline`` observations before them (at least ``min_baseline``):

* ``quality_drop``: the recent mean is below the baseline's by at least ``min_drop`` and a
  one-sided two-sample test (Agresti-Caffo difference of proportions; scores in [0, 1]) has
  p < ``alpha``;
* ``length_shift``: the median output length moved by ``length_ratio`` or more and the
  Mann-Whitney rank test has p < ``alpha``;
* ``refusal_rise``: the refusal rate rose by ``min_refusal_rise`` or more, p < ``alpha``;
* ``fingerprint_change``: the recent answers carry a ``system_fingerprint`` the baseline never
  showed (an upstream model changed under the same name).

An alarm is raised once (a row in ``alarms``, a WARNING log line on ``modelmix.alarms``, the
``modelmix_quality_alarms_total`` counter and ``modelmix_quality_alarm_active`` gauge, and a
JSON POST to the webhook when one is set) and cleared when its condition no longer holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from modelmix.evals.store import EvalStore
from modelmix.quality.config import AlarmsConfig
from modelmix.quality.store import Observation, QualityStore
from modelmix.stats import mann_whitney, normal_sf, proportion_difference_z

if TYPE_CHECKING:
    from modelmix.metrics import Metrics

log = logging.getLogger("modelmix.alarms")

ALARM_KINDS = ("quality_drop", "length_shift", "refusal_rise", "fingerprint_change")


@dataclass(slots=True)
class Finding:
    kind: str
    subject: str
    source: str
    detail: dict[str, Any]


def _split(
    values: Sequence[Any], config: AlarmsConfig
) -> tuple[Sequence[Any], Sequence[Any]] | None:
    if len(values) < config.window + config.min_baseline:
        return None
    recent = values[-config.window :]
    baseline = values[-config.window - config.baseline : -config.window]
    return baseline, recent


def quality_finding(
    subject: str, source: str, scores: Sequence[float], config: AlarmsConfig
) -> Finding | None:
    parts = _split(scores, config)
    if parts is None:
        return None
    baseline, recent = parts
    mean_b, mean_r = sum(baseline) / len(baseline), sum(recent) / len(recent)
    z = proportion_difference_z(sum(baseline), len(baseline), sum(recent), len(recent))
    p = normal_sf(-z)  # one-sided: recent below baseline
    if mean_b - mean_r >= config.min_drop and p < config.alpha:
        return Finding(
            "quality_drop",
            subject,
            source,
            {
                "baseline_mean": round(mean_b, 4),
                "recent_mean": round(mean_r, 4),
                "baseline_n": len(baseline),
                "recent_n": len(recent),
                "z": round(z, 3),
                "p": p,
            },
        )
    return None


def length_finding(
    subject: str, source: str, lengths: Sequence[int], config: AlarmsConfig
) -> Finding | None:
    parts = _split(lengths, config)
    if parts is None:
        return None
    baseline, recent = parts
    med_b, med_r = statistics.median(baseline), statistics.median(recent)
    z, p = mann_whitney(baseline, recent)
    ratio = (med_r + 1) / (med_b + 1)
    if p < config.alpha and (ratio >= config.length_ratio or ratio <= 1 / config.length_ratio):
        return Finding(
            "length_shift",
            subject,
            source,
            {
                "baseline_median": med_b,
                "recent_median": med_r,
                "ratio": round(ratio, 3),
                "z": round(z, 3),
                "p": p,
            },
        )
    return None


def refusal_finding(
    subject: str, source: str, refusals: Sequence[bool], config: AlarmsConfig
) -> Finding | None:
    parts = _split(refusals, config)
    if parts is None:
        return None
    baseline, recent = parts
    k_b, k_r = sum(baseline), sum(recent)
    rate_b, rate_r = k_b / len(baseline), k_r / len(recent)
    z = proportion_difference_z(k_b, len(baseline), k_r, len(recent))
    p = normal_sf(z)
    if rate_r - rate_b >= config.min_refusal_rise and p < config.alpha:
        return Finding(
            "refusal_rise",
            subject,
            source,
            {"baseline_rate": round(rate_b, 4), "recent_rate": round(rate_r, 4), "p": p},
        )
    return None


def fingerprint_finding(
    subject: str, source: str, prints: Sequence[str | None], config: AlarmsConfig
) -> Finding | None:
    parts = _split(prints, config)
    if parts is None:
        return None
    baseline, recent = parts
    before = {p for p in baseline if p}
    new = sorted({p for p in recent if p} - before)
    if before and new:
        return Finding(
            "fingerprint_change",
            subject,
            source,
            {"baseline": sorted(before), "new": new},
        )
    return None


def findings(
    series: dict[tuple[str, str], list[Observation]], config: AlarmsConfig
) -> tuple[list[Finding], dict[tuple[str, str], float]]:
    """Every condition that holds now, and each series' recent mean quality (for gauges)."""
    out: list[Finding] = []
    recent_quality: dict[tuple[str, str], float] = {}
    for (subject, source), obs in series.items():
        scores = [o.score for o in obs if o.score is not None]
        if scores:
            tail = scores[-config.window :]
            recent_quality[(subject, source)] = sum(tail) / len(tail)
        lengths = [o.completion_tokens for o in obs if o.completion_tokens is not None]
        refusals = [o.refusal for o in obs if o.refusal is not None]
        prints = [o.fingerprint for o in obs if o.refusal is not None]
        for found in (
            quality_finding(subject, source, scores, config),
            length_finding(subject, source, lengths, config),
            refusal_finding(subject, source, refusals, config),
            fingerprint_finding(subject, source, prints, config),
        ):
            if found is not None:
                out.append(found)
    return out, recent_quality


def gather(
    store: QualityStore, evals: EvalStore, config: AlarmsConfig, since: float
) -> dict[tuple[str, str], list[Observation]]:
    """Every series the alarms look at, oldest first (blocking: run it in a thread)."""
    series: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for r in evals.results_since(["probe"], since):
        series[(f"model:{r.model}", "probe")].append(
            Observation(
                r.created_at,
                r.model,
                score=r.score,
                completion_tokens=r.completion_tokens if r.error is None else None,
                refusal=r.refusal if r.error is None else None,
                fingerprint=r.system_fingerprint,
                source="probe",
            )
        )
    for by in ("model", "route"):
        for o in store.labelled(since, by=by):
            series[(f"{by}:{o.subject}", "live")].append(o)
    for o in store.behaviour(since):
        series[(f"model:{o.subject}", "live")].append(o)
    for obs in series.values():
        obs.sort(key=lambda o: o.at)
    return dict(series)


class Monitor:
    def __init__(
        self,
        store: QualityStore,
        evals: EvalStore,
        config: AlarmsConfig,
        metrics: Metrics | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.evals = evals
        self.config = config
        env = os.environ if env is None else env
        self.webhook = config.webhook_url or (
            env.get(config.webhook_url_env) if config.webhook_url_env else None
        )
        self.active: dict[tuple[str, str, str], int] = {
            (a.kind, a.subject, a.source): a.id for a in store.open_alarms()
        }
        self.fired: list[dict[str, Any]] = []
        self.webhook_failures = 0
        self._session: aiohttp.ClientSession | None = None
        self._metrics = _AlarmMetrics.of(metrics) if metrics is not None else None
        if self._metrics is not None:
            for kind, subject, source in self.active:
                self._metrics.active(kind, subject, source, True)

    async def check(self, now: float) -> list[Finding]:
        """Compare every series' recent window with its baseline; raise and clear alarms."""
        since = now - self.config.lookback_hours * 3600
        series = await asyncio.to_thread(gather, self.store, self.evals, self.config, since)
        # another process (modelmix alarms check, another worker) may have raised or cleared
        open_now = await asyncio.to_thread(self.store.open_alarms)
        self.active = {(a.kind, a.subject, a.source): a.id for a in open_now}
        found, quality = findings(series, self.config)
        if self._metrics is not None:
            for (subject, source), value in quality.items():
                self._metrics.quality(subject, source, value)
        holding = {(f.kind, f.subject, f.source): f for f in found}
        raised: list[Finding] = []
        for key, finding in holding.items():
            if key in self.active:
                continue
            alarm_id = await asyncio.to_thread(
                self.store.raise_alarm,
                finding.kind,
                finding.subject,
                finding.source,
                finding.detail,
                now,
            )
            self.active[key] = alarm_id
            raised.append(finding)
            if self._metrics is not None:
                self._metrics.raised(finding.kind, finding.subject, finding.source)
            await self.notify(
                {
                    "id": alarm_id,
                    "kind": finding.kind,
                    "subject": finding.subject,
                    "source": finding.source,
                    "detail": finding.detail,
                    "at": now,
                }
            )
        for key in [k for k in self.active if k not in holding]:
            alarm_id = self.active.pop(key)
            await asyncio.to_thread(self.store.clear_alarm, alarm_id, now)
            log.info("alarm cleared: %s %s (%s)", key[0], key[1], key[2])
            if self._metrics is not None:
                self._metrics.active(*key, False)
        return raised

    async def notify(self, event: dict[str, Any]) -> None:
        """Log the event and POST it to the webhook, if any (never raises)."""
        self.fired.append(event)
        log.warning(
            "ALARM %s on %s: %s",
            event["kind"],
            event["subject"],
            orjson.dumps(event.get("detail", {})).decode()[:500],
        )
        if not self.webhook:
            return
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            body = orjson.dumps({"sender": "modelmix", **event})
            async with self._session.post(
                self.webhook, data=body, headers={"content-type": "application/json"}
            ) as response:
                if response.status >= 300:
                    self.webhook_failures += 1
                    log.warning("alarm webhook answered HTTP %s", response.status)
        except Exception as exc:
            self.webhook_failures += 1  # the URL may hold a secret: never log it
            log.warning("alarm webhook failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AlarmMetrics:
    """Prometheus series of the alarms, in the gateway's registry (label values come from
    the config's model and route names, so the series stay bounded)."""

    _by_registry: weakref.WeakKeyDictionary[Any, _AlarmMetrics] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, metrics: Metrics) -> _AlarmMetrics:
        """One set per registry (a gateway started twice registers its series once)."""
        registry = metrics.registry
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.alarms = Counter(
            "modelmix_quality_alarms",
            "Regression alarms raised.",
            ("kind", "subject", "source"),
            registry=registry,
        )
        self.is_active = Gauge(
            "modelmix_quality_alarm_active",
            "1 while a regression alarm holds.",
            ("kind", "subject", "source"),
            registry=registry,
        )
        self.score = Gauge(
            "modelmix_quality_score",
            "Mean quality of the most recent window (judge, feedback, probes).",
            ("subject", "source"),
            registry=registry,
        )

    def raised(self, kind: str, subject: str, source: str) -> None:
        self.alarms.labels(kind, subject, source).inc()
        self.active(kind, subject, source, True)

    def active(self, kind: str, subject: str, source: str, on: bool) -> None:
        self.is_active.labels(kind, subject, source).set(1 if on else 0)

    def quality(self, subject: str, source: str, value: float) -> None:
        self.score.labels(subject, source).set(value)
