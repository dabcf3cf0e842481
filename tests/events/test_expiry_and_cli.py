"""consent.expired when first observed; the ``vault webhooks`` and ``vault worker`` commands."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook as Verifier
from typer.testing import CliRunner

from tests.events.helpers import deliveries, emit_many, subscribe
from tests.factories import create_customer, record_consent
from vault.audit.models import AuditEvent
from vault.cli import app
from vault.consent import expiry
from vault.db import utcnow
from vault.events.models import OutboxEvent
from vault.events.worker import Worker


def _expired(runtime) -> list[OutboxEvent]:
    with Session(runtime.engine) as s:
        return list(
            s.execute(select(OutboxEvent).where(OutboxEvent.type == "consent.expired")).scalars()
        )


def test_an_expired_grant_is_told_once(session, runtime):
    now = utcnow()
    old = create_customer(session, runtime)
    fresh = create_customer(session, runtime)
    gone = create_customer(session, runtime)
    long_ago = now - timedelta(days=400)  # personalised_offers: consent_ttl_days = 365
    grant = record_consent(
        session, runtime, old.id, "personalised_offers", occurred_at=long_ago, now=now
    )
    record_consent(session, runtime, fresh.id, "personalised_offers", now=now)
    record_consent(
        session, runtime, gone.id, "personalised_offers", "withdrawn", occurred_at=long_ago
    )
    with Session(runtime.engine) as s:
        assert expiry.sweep_expired(session=s, policy=runtime.policy, now=now) == 1
        s.commit()
    with Session(runtime.engine) as s:
        assert expiry.sweep_expired(session=s, policy=runtime.policy, now=now) == 0
        s.commit()
    (event,) = _expired(runtime)
    assert event.customer_id == old.id
    assert event.data["purpose"] == "personalised_offers"
    assert event.data["status"] == "expired"
    assert event.data["consent_event_id"] == str(grant.event.id)
    assert event.data["expired_at"] == (long_ago + timedelta(days=365)).isoformat()
    # a new grant after the expiry can expire again later: the key is per grant
    assert event.dedupe_key == f"consent.expired:{grant.event.id}"


def test_the_worker_sweeps_and_delivers_consent_expired(session, runtime, receiver):
    _, secret = subscribe(runtime, receiver.url, events=["consent.expired"])
    receiver.secret = secret
    customer = create_customer(session, runtime)
    record_consent(
        session,
        runtime,
        customer.id,
        "third_party_ads",
        occurred_at=utcnow() - timedelta(days=366),
    )
    with Worker(runtime) as w:
        w.run_once()  # sweep + dispatch + claim
        w.run_once()
    assert receiver.wait_for(1, timeout=5)
    (d,) = receiver.accepted()
    assert d.verified and d.payload["type"] == "consent.expired"
    assert d.payload["data"]["customer_id"] == str(customer.id)


def _env(settings) -> dict[str, str]:
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
        "VAULT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    }


def test_webhooks_commands(runtime, settings, receiver):
    cli = CliRunner()
    env = _env(settings)
    r = cli.invoke(
        app,
        [
            "webhooks",
            "create",
            "--url",
            receiver.url,
            "--events",
            "customer.updated consent.granted",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["consent.granted", "customer.updated"]
    wid = created["id"]
    ids = emit_many(runtime, [uuid.uuid4()], 2)
    receiver.secret = created["secret"]
    r = cli.invoke(app, ["worker", "--once"], env=env)
    assert r.exit_code == 0, r.output
    # one round: the customer's first event only (the second waits for it to succeed)
    assert receiver.wait_for(1, timeout=5)
    assert receiver.ids() == [str(ids[0])]
    listed = json.loads(cli.invoke(app, ["webhooks", "list"], env=env).output)
    assert [w["id"] for w in listed] == [wid]
    assert "secret" not in listed[0]
    assert sum(listed[0]["deliveries"].values()) == 2
    r = cli.invoke(app, ["webhooks", "rotate-secret", wid], env=env)
    assert r.exit_code == 0
    rotated = json.loads(r.output)["secret"]
    assert rotated != created["secret"]
    d = receiver.accepted()[0]
    Verifier(created["secret"]).verify(d.body, d.headers)
    r = cli.invoke(app, ["webhooks", "redeliver", wid, "--event-id", str(ids[0])], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["requeued"] == 1
    r = cli.invoke(app, ["webhooks", "disable", wid], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "disabled"
    r = cli.invoke(app, ["webhooks", "redeliver", wid], env=env)
    assert r.exit_code == 1
    assert "webhook_disabled" in r.output
    with Session(runtime.engine) as s:
        actions = s.execute(
            select(AuditEvent.action, AuditEvent.actor_type).where(
                AuditEvent.action.like("webhook.%")
            )
        ).all()
    assert sorted(a for a, _ in actions) == [
        "webhook.created",
        "webhook.disabled",
        "webhook.redelivered",
        "webhook.secret_rotated",
    ]
    assert {t for _, t in actions} == {"cli"}
    assert len(deliveries(runtime)) == 2


def test_webhooks_create_refuses_private_addresses(settings):
    env = {**_env(settings), "VAULT_WEBHOOK_ALLOWED_HOSTS": ""}
    r = CliRunner().invoke(
        app,
        ["webhooks", "create", "--url", "http://10.0.0.1/h", "--events", "consent.withdrawn"],
        env=env,
    )
    assert r.exit_code == 1
    assert "webhook_url_forbidden" in r.output
