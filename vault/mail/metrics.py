"""Prometheus metrics of the mail outbox, counted in the database at scrape time (the same
numbers from every replica, like :mod:`vault.events.metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session

from vault.db import reader, utcnow
from vault.mail import outbox
from vault.mail.models import MailStatus


class MailCollector(Collector):
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with Session(reader(self.engine)) as session:
            counts = outbox.counts(session)
            oldest = outbox.oldest_open(session)
            session.rollback()
        mails = GaugeMetricFamily(
            "vault_mail_messages",
            "Mails in the outbox by state (pending, retrying = retry scheduled, sent, "
            "bounced = refused for good by the server, failed = given up).",
            labels=["state"],
        )
        for state in MailStatus:
            mails.add_metric([state.value], counts[state.value])
        yield mails
        age = 0.0 if oldest is None else max(0.0, (self.clock() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "vault_mail_oldest_unsent_seconds",
            "Age of the oldest mail still waiting to be sent (0: none waits).",
            value=age,
        )
