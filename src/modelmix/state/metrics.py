"""Prometheus series of the shared state (read from ``RedisLink`` at scrape time):

- ``modelmix_shared_state_up``: 1 while Redis answers, 0 while it is down;
- ``modelmix_shared_state_outages_total``: times Redis was found unreachable;
- ``modelmix_shared_state_local_admissions_total``: requests admitted on this replica's own
  counters while Redis was down (fail_open; each is also flagged in its ledger row);
- ``modelmix_shared_state_pending_writes``: settlements queued for Redis;
- ``modelmix_shared_state_dropped_writes_total``: settlements dropped (queue full).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from modelmix.metrics import Metrics
    from modelmix.state.link import RedisLink

__all__ = ["export_state_metrics"]


class _StateCollector(Collector):
    def __init__(self, link: RedisLink) -> None:
        self.link = link

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        link = self.link
        yield GaugeMetricFamily(
            "modelmix_shared_state_up", "1 while Redis answers.", value=int(link.up)
        )
        yield CounterMetricFamily(
            "modelmix_shared_state_outages",
            "Times Redis was found unreachable.",
            value=link.outages,
        )
        yield CounterMetricFamily(
            "modelmix_shared_state_local_admissions",
            "Requests admitted on this replica's own counters while Redis was down.",
            value=link.local_admissions,
        )
        yield GaugeMetricFamily(
            "modelmix_shared_state_pending_writes",
            "Settlements queued for Redis.",
            value=link.pending,
        )
        yield CounterMetricFamily(
            "modelmix_shared_state_dropped_writes",
            "Settlements dropped because the queue was full.",
            value=link.dropped_writes,
        )


def export_state_metrics(metrics: Metrics, link: RedisLink) -> None:
    """Register the shared-state series on ``metrics`` (once)."""
    if getattr(metrics, "_state_collector", None) is None:
        collector = _StateCollector(link)
        metrics.registry.register(collector)
        metrics._state_collector = collector  # type: ignore[attr-defined]
