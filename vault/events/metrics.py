"""Prometheus metrics of the delivery queue, counted in the database at scrape time.

Counting at scrape time (not in-process counters) gives the same numbers from every replica and
survives restarts; the counts are grouped by state with an index-only scan.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session

from vault.db import reader
from vault.events import queue


class DeliveryCollector(Collector):
    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with Session(reader(self.engine)) as session:
            counts = queue.counts(session)
            session.rollback()
        deliveries = GaugeMetricFamily(
            "vault_webhook_deliveries",
            "Webhook deliveries by state (pending, delivered, failed = retry scheduled, "
            "dead = dead-lettered).",
            labels=["state"],
        )
        for state in ("pending", "delivered", "failed", "dead"):
            deliveries.add_metric([state], counts[state])
        yield deliveries
        yield GaugeMetricFamily(
            "vault_outbox_undispatched_events",
            "Outbox events not yet fanned out to webhook deliveries.",
            value=counts["undispatched"],
        )


def render(engine: Engine) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(engine))
    return generate_latest(registry), CONTENT_TYPE_LATEST
