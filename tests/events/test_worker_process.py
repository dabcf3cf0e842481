"""``vault worker`` as a process: SIGKILL mid-batch, end-to-end latency, two workers at once."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from tests.events.conftest import FAST
from tests.events.helpers import deliveries, emit_many, subscribe
from tests.factories import auth_headers, create_customer
from tests.hardening.server import vault_env
from vault import PROJECT_ROOT
from vault.events.models import OutboxEvent


def _env(settings, **overrides) -> dict[str, str]:
    return vault_env(settings, **{**FAST, **overrides})


def start_worker(settings, *args: str, **overrides) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from vault.cli import app; app()", "worker", *args],
        cwd=PROJECT_ROOT,
        env=_env(settings, **overrides),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def wait_until_dispatched(runtime, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait for the ready signal: the worker process has dispatched every outbox row there is,
    so it is past its start-up (imports, runtime, first connection) and polling."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, stop(proc)
        with Session(runtime.engine) as s:
            waiting = s.execute(
                select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
            ).scalar_one()
        if waiting == 0:
            return
        time.sleep(0.02)
    pytest.fail(f"the worker did not dispatch within {timeout}s: {stop(proc)}")


def _first_arrivals_in_order(got) -> bool:
    seen: set[str] = set()
    per_customer: dict[str, list[int]] = defaultdict(list)
    for d in got:
        if d.event_id in seen:
            continue
        seen.add(d.event_id)
        per_customer[d.payload["data"]["customer_id"]].append(d.payload["data"]["k"])
    return all(ks == sorted(ks) for ks in per_customer.values())


@pytest.mark.slow
def test_sigkill_mid_batch_then_restart_loses_nothing(runtime, settings, receiver):
    _, secret = subscribe(runtime, receiver.url)
    receiver.secret = secret
    receiver.delay = 0.05  # keep requests in flight when the kill comes
    customers = [uuid.uuid4() for _ in range(20)]
    ids = emit_many(runtime, customers, 10)
    first = start_worker(settings, "--concurrency", "4", "--batch-size", "16")
    try:
        assert receiver.wait_for(30, timeout=30), stop(first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    delivered_before = set(receiver.ids())
    assert len(delivered_before) < len(ids)
    states = {d.status for d in deliveries(runtime)}
    assert states & {"pending", "failed"}, "the kill came after the end"
    second = start_worker(settings, "--concurrency", "4")
    try:
        assert receiver.wait_for(len(ids), timeout=60), stop(second)
    finally:
        stop(second)
    got = receiver.accepted()
    assert {d.event_id for d in got} == {str(i) for i in ids}  # at least once, none lost
    assert all(d.verified for d in got)
    assert _first_arrivals_in_order(got)
    assert {d.status for d in deliveries(runtime)} == {"delivered"}


@pytest.mark.slow
def test_a_withdrawal_through_the_api_reaches_the_receiver_within_2_seconds(
    client, session, runtime, settings, receiver
):
    customer = create_customer(session, runtime)
    headers = auth_headers(session, runtime, "consent:write", "consent:read", "webhooks:manage")
    session.rollback()
    r = client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": ["consent.withdrawn"]},
        headers=headers,
    )
    assert r.status_code == 201
    receiver.secret = r.json()["secret"]
    body = {"purpose": "personalised_offers", "channel": "web"}
    r = client.post(
        f"/v1/customers/{customer.id}/consents", json={**body, "status": "granted"}, headers=headers
    )
    assert r.status_code == 201  # its consent.granted row waits in the outbox
    worker = start_worker(settings)
    try:
        wait_until_dispatched(runtime, worker)  # the worker is up and idle
        started = time.monotonic()
        r = client.post(
            f"/v1/customers/{customer.id}/consents",
            json={**body, "status": "withdrawn"},
            headers=headers,
        )
        assert r.status_code == 201
        assert receiver.wait_for(1, timeout=2.0), stop(worker)
        elapsed = time.monotonic() - started
    finally:
        err = stop(worker)
    assert elapsed < 2.0
    (d,) = receiver.accepted()
    assert d.verified
    assert d.payload["type"] == "consent.withdrawn"
    assert d.payload["data"]["customer_id"] == str(customer.id)
    assert d.payload["data"]["purpose"] == "personalised_offers"
    assert d.payload["data"]["status"] == "withdrawn"
    assert "stopped: 1 delivered, 0 failed, 0 dead" in err
    assert receiver.url not in err and "127.0.0.1" not in err


@pytest.mark.slow
def test_two_workers_on_postgres_deliver_5000_events_never_both_at_once(
    backend, runtime, settings, receiver
):
    if backend != "postgres":
        pytest.skip("the acceptance test is PostgreSQL's (SKIP LOCKED)")
    _, secret = subscribe(runtime, receiver.url)
    receiver.secret = secret
    customers = [uuid.uuid4() for _ in range(500)]
    ids = emit_many(runtime, customers, 10)
    assert len(ids) == 5000
    lease = {"webhook_timeout": 5, "webhook_lease_seconds": 60}
    workers = [
        start_worker(settings, "--concurrency", "8", "--batch-size", "100", **lease)
        for _ in range(2)
    ]
    try:
        assert receiver.wait_for(len(ids), timeout=120)
    finally:
        errs = [stop(w) for w in workers]
    got = receiver.accepted()
    assert receiver.overlaps == []  # no event was in flight twice at the same moment
    assert sorted(d.event_id for d in got) == sorted(str(i) for i in ids)  # each exactly once
    assert all(d.verified for d in got)
    assert _first_arrivals_in_order(got)
    counts = [int(re.search(r"stopped: (\d+) delivered", e).group(1)) for e in errs]
    assert sum(counts) == 5000 and min(counts) > 0, counts  # both workers took a share
