"""The delivery queue: backoff with jitter and a cap, a lease that outlasts a request, claims that
never overlap."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import Session

from tests.events.helpers import deliveries, emit_many, subscribe
from vault.config import Settings
from vault.db import utcnow
from vault.events import queue


def test_backoff_grows_with_jitter_and_a_cap():
    s = Settings(webhook_backoff_base=1, webhook_backoff_max=10, _env_file=None)
    rng = random.Random(1)
    delays = [queue.backoff(n, s, rng).total_seconds() for n in range(1, 8)]
    for n, d in enumerate(delays, 1):
        full = min(10, 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(delays) <= 10


def test_the_lease_must_outlast_a_request():
    with pytest.raises(ValidationError):
        Settings(webhook_timeout=30, webhook_lease_seconds=30, _env_file=None)


def test_two_claims_at_once_share_the_due_deliveries_without_overlap(runtime, backend):
    """Six due deliveries, two workers with a limit of four each, neither committed: four and
    two, disjoint (on PostgreSQL the second skips the first's locked rows without waiting)."""
    subscribe(runtime, "http://127.0.0.1:9/hook", events=["customer.updated"])
    emit_many(runtime, [uuid.uuid4() for _ in range(6)], per_customer=1)
    now = utcnow()
    with Session(runtime.engine) as s:
        assert queue.dispatch(session=s, now=now) == 6
        s.commit()
    lease = timedelta(seconds=60)
    with Session(runtime.engine) as first, Session(runtime.engine) as second:
        a = queue.claim(session=first, worker_id="a", now=now, lease=lease, limit=4)
        if backend == "sqlite":  # one writer at a time: the second waits for this commit
            first.commit()
        b = queue.claim(session=second, worker_id="b", now=now, lease=lease, limit=4)
        second.commit()
        first.commit()
    assert len(a) == 4 and len(b) == 2
    assert not {j.delivery_id for j in a} & {j.delivery_id for j in b}
    with Session(runtime.engine) as s:
        assert queue.claim(session=s, worker_id="c", now=now, lease=lease, limit=4) == []
    assert sorted(d.claimed_by for d in deliveries(runtime)) == ["a"] * 4 + ["b"] * 2
