"""Crash safety: SIGKILL the real server while consent writes are in flight, restart it on the
same data, and check that nothing acknowledged was lost and nothing was half-written.

The stream: several threads send grants and withdrawals on a few overlapping customers and
purposes (each with its own ``Idempotency-Key``, repeated in the evidence's user agent so the
ledger row of an unanswered write can be found) and reads. Every 201 is an acknowledged write.
Then the kill, a restart, and the checks: every acknowledged event is in the ledger as answered;
each unanswered write exists completely (event, idempotency answer, audit event, outbox event,
projection) or not at all; projection == replay (``vault consent rebuild --check``); the audit
chain verifies after the restarted server's sealer has chained everything; the restarted
server answers reads as the ledger says.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.factories import create_client, create_customer, token
from tests.hardening.server import Server, vault_cli
from vault.audit.models import AuditEvent
from vault.audit.seal import needs_sealing
from vault.consent import rules as consent_rules
from vault.consent import schemas as consent_schemas
from vault.consent.models import ConsentEvent, ConsentIdempotency
from vault.db import reader, utcnow
from vault.events.models import OutboxEvent

pytestmark = pytest.mark.slow

PURPOSES = ("personalised_offers", "third_party_ads", "push_notifications")
CUSTOMERS = 6
WRITERS = 4
READERS = 2
MIN_ACKED = 150


@dataclass
class Stream:
    """What the clients saw. Threads append; list.append and dict.__setitem__ are atomic."""

    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> request
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> 201 body
    unanswered: list[str] = field(default_factory=list)  # keys without any answer
    in_flight: list[str] = field(default_factory=list)  # ... of them sent before the kill
    other: list[tuple[str, int, str]] = field(default_factory=list)  # unexpected answers
    landed: dict[str, str] = field(default_factory=dict)  # unanswered key -> its event id
    reads: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


AGENT = "crash-test/"  # the evidence allowlist has no free key: the attempt rides in the agent


def _attempt(event: ConsentEvent) -> str:
    return event.evidence.get("user_agent", "").removeprefix(AGENT)


def _writer(url: str, headers: dict, customers: list[uuid.UUID], stream: Stream, seed: int):
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        while not stream.stop.is_set():
            key = f"crash-{uuid.uuid4().hex}"
            customer = rnd.choice(customers)
            body = {
                "purpose": rnd.choice(PURPOSES),
                "status": rnd.choice(("granted", "withdrawn")),
                "channel": "app",
                "evidence": {"user_agent": f"{AGENT}{key}"},
            }
            stream.attempts[key] = {"customer_id": str(customer), **body}
            try:
                r = http.post(
                    f"/v1/customers/{customer}/consents",
                    json=body,
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError as exc:
                stream.unanswered.append(key)
                if not isinstance(exc, httpx.ConnectError):  # not merely refused after it
                    stream.in_flight.append(key)
                return  # the server is gone
            if r.status_code == 201:
                stream.acked[key] = r.json()
            else:
                stream.other.append((key, r.status_code, r.text[:200]))


def _reader(url: str, headers: dict, customers: list[uuid.UUID], stream: Stream, seed: int):
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        while not stream.stop.is_set():
            customer = rnd.choice(customers)
            try:
                if rnd.random() < 0.5:
                    r = http.get(f"/v1/customers/{customer}/consents")
                    ok = r.status_code == 200
                else:
                    r = http.get(
                        f"/v1/customers/{customer}/data",
                        params={"purpose": "personalised_offers"},
                    )
                    ok = r.status_code in (200, 403)
            except httpx.TransportError:
                return
            stream.reads += 1
            if not ok:
                stream.other.append(("read", r.status_code, r.text[:200]))


def _ledger(engine) -> list[ConsentEvent]:
    with Session(reader(engine)) as s:
        return list(s.execute(select(ConsentEvent)).scalars())


def test_sigkill_mid_stream_loses_no_acknowledged_write(
    runtime, settings, session, tmp_path, backend
):
    customers = [create_customer(session, runtime).id for _ in range(CUSTOMERS)]
    client, _ = create_client(
        session,
        runtime,
        scopes=["consent:write", "consent:read", "data:read"],
        purposes=PURPOSES,
    )
    headers = {"Authorization": f"Bearer {token(runtime, client)}"}
    session.rollback()
    # seal often, so the kill can also land inside a sealing transaction
    server = Server(
        settings, tmp_path / "logs", audit_seal_interval=0.1, audit_checkpoint_interval=0.5
    )
    server.start()
    stream = Stream()
    threads = [
        threading.Thread(target=_writer, args=(server.url, headers, customers, stream, i))
        for i in range(WRITERS)
    ] + [
        threading.Thread(target=_reader, args=(server.url, headers, customers, stream, 100 + i))
        for i in range(READERS)
    ]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(stream.acked) < MIN_ACKED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(stream.acked) >= MIN_ACKED, server.log()
        server.kill()  # mid-stream: every writer has a request out or is about to send one
    finally:
        server.kill()
        stream.stop.set()
        for t in threads:
            t.join(timeout=60)
    assert stream.other == [], stream.other[:5]
    assert stream.in_flight, "the kill came when no write was in flight"
    acked_before_restart = dict(stream.acked)

    server.start()  # restart on the same database, data directory and keys
    try:
        _check_ledger(runtime, client, stream)
        _retry_unanswered(runtime, server, headers, stream)
        check = vault_cli(settings, "consent", "rebuild", "--check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "ok: projection matches the ledger" in check.stdout
        _check_reads(runtime, server, headers, customers)
        # a write after the restart is acknowledged and lands like the others
        r = httpx.post(
            f"{server.url}/v1/customers/{customers[0]}/consents",
            json={"purpose": PURPOSES[0], "status": "withdrawn", "channel": "app"},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        # the restarted server's sealer chains the whole log, including the pre-crash tail
        deadline = time.monotonic() + 30
        while _needs_sealing(runtime.engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _needs_sealing(runtime.engine), "the restarted server did not seal"
        verify = vault_cli(settings, "audit", "verify", "--json", "--no-seal")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        result = json.loads(verify.stdout)
        assert result["ok"] is True and result["first_invalid_seq"] is None, result
        assert result["checked"] >= len(acked_before_restart)
    finally:
        server.stop()
    print(
        f"\n[{backend}] acknowledged {len(acked_before_restart)}, in flight at the kill "
        f"{len(stream.in_flight)}, unanswered {len(stream.unanswered)} "
        f"({len(stream.landed)} had landed), reads {stream.reads}"
    )


def _needs_sealing(engine) -> bool:
    with reader(engine).connect() as conn:
        return needs_sealing(conn)


def _check_ledger(runtime, client, stream: Stream) -> None:
    events = _ledger(runtime.engine)
    by_id = {str(e.id): e for e in events}
    by_attempt: dict[str, list[ConsentEvent]] = defaultdict(list)
    for e in events:
        by_attempt[_attempt(e)].append(e)
    assert all(len(v) == 1 for v in by_attempt.values()), "a write landed twice"
    with Session(reader(runtime.engine)) as s:
        answers = {
            row.key: row.response
            for row in s.execute(
                select(ConsentIdempotency).where(ConsentIdempotency.client == f"client:{client.id}")
            ).scalars()
        }
        audits = list(
            s.execute(select(AuditEvent).where(AuditEvent.action == "consent.recorded")).scalars()
        )
        outbox = list(
            s.execute(select(OutboxEvent).where(OutboxEvent.type.like("consent.%"))).scalars()
        )

    # 1. every acknowledged write is in the ledger exactly as it was answered
    for key, answer in stream.acked.items():
        event = by_id.get(answer["event"]["id"])
        assert event is not None, f"acknowledged write {key} lost"
        assert consent_schemas.event_public(event) == answer["event"]
        request = stream.attempts[key]
        assert (str(event.customer_id), event.purpose) == (
            request["customer_id"],
            request["purpose"],
        )
        assert event.status == request["status"]
        assert answers[key]["event"]["id"] == answer["event"]["id"]

    # 2. an unanswered write is all there or not at all
    for key in stream.unanswered:
        found = by_attempt.get(key, [])
        if found:
            stream.landed[key] = str(found[0].id)
            assert key in answers, f"event of {key} without its idempotency answer"
            assert answers[key]["event"]["id"] == str(found[0].id)
        else:
            assert key not in answers, f"idempotency answer of {key} without its event"
    landed = len(stream.landed)

    # nothing in the ledger that nobody sent
    assert set(by_attempt) <= set(stream.attempts)
    assert len(events) == len(stream.acked) + landed

    # 3. every event has its audit event, and every deciding event its outbox event
    ledger_counts = Counter((e.customer_id, e.purpose, e.status) for e in events)
    audit_counts = Counter(
        (a.customer_id, a.purpose, json.loads(a.details)["status"]) for a in audits
    )
    assert audit_counts == ledger_counts
    applied = sum(1 for a in audits if a.reason is None)
    assert len(outbox) == applied
    assert {o.data["consent_event_id"] for o in outbox} <= set(by_id)


def _retry_unanswered(runtime, server: Server, headers: dict, stream: Stream) -> None:
    """What a client does after a timeout: send again with the same Idempotency-Key. A write
    that had landed answers with its event (no second one), one that had not lands now."""
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for key in stream.unanswered:
            request = dict(stream.attempts[key])
            customer = request.pop("customer_id")
            r = http.post(
                f"/v1/customers/{customer}/consents",
                json=request,
                headers={"Idempotency-Key": key},
            )
            assert r.status_code == 201, r.text
            if key in stream.landed:
                assert r.json()["event"]["id"] == stream.landed[key]
    seen = Counter(_attempt(e) for e in _ledger(runtime.engine))
    assert all(seen[key] == 1 for key in stream.attempts if key in seen)
    assert all(seen[key] == 1 for key in stream.unanswered)


def _check_reads(runtime, server: Server, headers: dict, customers: list[uuid.UUID]) -> None:
    events = _ledger(runtime.engine)
    per_key: dict[tuple[str, str], list[ConsentEvent]] = defaultdict(list)
    for e in sorted(events, key=lambda e: (e.occurred_at, e.seq)):
        per_key[(str(e.customer_id), e.purpose)].append(e)
    now = utcnow()
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for customer in customers:
            r = http.get(f"/v1/customers/{customer}/consents")
            assert r.status_code == 200, r.text
            shown = {p["purpose"]: p["status"] for p in r.json()["purposes"]}
            for pid in PURPOSES:
                purpose = runtime.policy.purposes[pid]
                decision = consent_rules.replay(per_key.get((str(customer), pid), []))
                want = consent_rules.effective_status(decision, purpose, now)
                assert shown[pid] == want, (customer, pid)
            r = http.get(f"/v1/customers/{customer}/data", params={"purpose": PURPOSES[0]})
            granted = shown[PURPOSES[0]] == "granted"
            assert r.status_code == (200 if granted else 403), r.text
