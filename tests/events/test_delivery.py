"""The worker in-process: signed deliveries, retries, ordering, dead letters, redelivery."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.events.helpers import deliveries, drain, emit_many, in_state, subscribe, tried
from tests.events.receiver import Receiver
from vault.events.worker import Worker
from vault.provenance import Caller


@pytest.fixture
def worker(runtime):
    with Worker(runtime, concurrency=4, batch_size=16) as w:
        yield w


def test_every_delivery_verifies_with_standardwebhooks(runtime, receiver, worker):
    _, secret = subscribe(runtime, receiver.url)
    assert secret.startswith("whsec_")
    receiver.secret = secret
    cid = uuid.uuid4()
    ids = emit_many(runtime, [cid], 3)
    assert drain(worker, lambda: receiver.wait_for(3, timeout=0))
    got = receiver.accepted()
    assert all(d.verified for d in got)
    assert [d.event_id for d in got] == [str(i) for i in ids]
    first = got[0]
    assert first.path == "/hook"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-signature"].startswith("v1,")
    assert first.payload["type"] == "customer.updated"
    assert first.payload["data"] == {"customer_id": str(cid), "k": 0}
    assert {d.status for d in deliveries(runtime)} == {"delivered"}


def test_a_tampered_body_or_a_wrong_secret_fails_the_check(runtime, receiver, worker):
    _, secret = subscribe(runtime, receiver.url)
    receiver.secret = secret
    emit_many(runtime, [uuid.uuid4()], 1)
    assert drain(worker, lambda: receiver.wait_for(1, timeout=0))
    d = receiver.accepted()[0]
    Webhook(secret).verify(d.body, d.headers)  # the original passes
    tampered = d.body.replace(b"customer.updated", b"customer.erased")
    assert tampered != d.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, d.headers)
    other = Webhook("whsec_" + "QUJD" * 8)
    with pytest.raises(WebhookVerificationError):
        other.verify(d.body, d.headers)


def test_receiver_down_loses_nothing_and_order_holds(runtime):
    from dataclasses import replace

    # never dead-lettered while down, however slow the rounds (a dead letter unblocks the next)
    patient = runtime.settings.model_copy(update={"webhook_max_attempts": 100})
    runtime = replace(runtime, settings=patient)
    worker = Worker(runtime, concurrency=4, batch_size=16)
    receiver = Receiver().start()
    port = receiver.port
    _, secret = subscribe(runtime, receiver.url)
    receiver.stop()  # down: connection refused
    customers = [uuid.uuid4() for _ in range(3)]
    ids = emit_many(runtime, customers, 4)
    for _ in range(10):
        worker.run_once()
    states = [d.status for d in deliveries(runtime)]
    assert "delivered" not in states and "failed" in states
    # only the head of each customer's queue was tried
    assert sum(d.attempts > 0 for d in deliveries(runtime)) == len(customers)
    back = Receiver(secret=secret, port=port).start()
    try:
        assert drain(worker, lambda: back.wait_for(len(ids), timeout=0))
        got = back.accepted()
        assert all(d.verified for d in got)
        assert sorted(d.event_id for d in got) == sorted(str(i) for i in ids)
        per_customer = defaultdict(list)
        for d in got:
            per_customer[d.payload["data"]["customer_id"]].append(d.payload["data"]["k"])
        assert all(ks == [0, 1, 2, 3] for ks in per_customer.values())
    finally:
        back.stop()
        worker.close()


def test_a_failing_event_holds_back_later_events_of_its_customer(runtime, receiver, worker):
    _, secret = subscribe(runtime, receiver.url)
    receiver.secret = secret
    receiver.script = [503, 503]  # the first two requests fail
    cid = uuid.uuid4()
    ids = emit_many(runtime, [cid], 3)
    assert drain(worker, lambda: receiver.wait_for(3, timeout=0))
    attempts = [d.event_id for d in receiver.deliveries]
    assert attempts[:3] == [str(ids[0])] * 3  # retried, nothing else sent meanwhile
    assert receiver.ids() == [str(i) for i in ids]
    assert [d.attempts for d in deliveries(runtime)] == [3, 1, 1]


def test_dead_letter_after_max_attempts_then_redeliver(runtime, receiver, worker, client, session):
    from tests.factories import create_client, token
    from vault.provenance import Caller

    app, _ = create_client(
        session, runtime, scopes=["webhooks:manage", "customers:write", "consent:read"]
    )
    headers = {"Authorization": f"Bearer {token(runtime, app)}"}
    session.rollback()
    # created by the app that redelivers below: an app manages only its own subscriptions
    webhook, secret = subscribe(runtime, receiver.url, by=Caller(f"client:{app.id}"))
    receiver.secret = secret
    receiver.status = 500
    cid = uuid.uuid4()
    ids = emit_many(runtime, [cid], 2)
    max_attempts = runtime.settings.webhook_max_attempts

    assert drain(worker, lambda: in_state(runtime, 0, "dead"))
    rows = deliveries(runtime)
    assert rows[0].attempts == max_attempts
    assert rows[0].last_error == "http_500" and rows[0].last_status_code == 500
    # a dead letter no longer blocks its customer's later events
    assert drain(worker, lambda: tried(runtime, 1))

    receiver.status = 204
    assert drain(worker, lambda: in_state(runtime, 1, "delivered"))
    r = client.post(f"/v1/webhooks/{webhook.id}/redeliver", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"webhook_id": str(webhook.id), "requeued": 1}
    assert drain(worker, lambda: in_state(runtime, 0, "delivered"))
    assert receiver.ids() == [str(ids[1]), str(ids[0])]
    # one event again, whatever its state
    r = client.post(
        f"/v1/webhooks/{webhook.id}/redeliver", json={"event_id": str(ids[1])}, headers=headers
    )
    assert r.json()["requeued"] == 1
    assert drain(worker, lambda: receiver.ids().count(str(ids[1])) == 2)


def test_disabled_subscriptions_get_nothing(runtime, receiver, worker):
    from sqlmodel import Session

    from vault.events import webhooks

    webhook, _ = subscribe(runtime, receiver.url)
    emit_many(runtime, [uuid.uuid4()], 1)
    receiver.status = 500
    worker.run_once()  # dispatched and tried once
    assert [d.status for d in deliveries(runtime)] == ["failed"]
    with Session(runtime.engine) as s:
        webhooks.disable_webhook(session=s, webhook_id=webhook.id, by=Caller("cli"))
        s.commit()
    (row,) = deliveries(runtime)
    assert row.status == "dead" and row.last_error == "webhook_disabled"
    receiver.deliveries.clear()
    for _ in range(5):
        worker.run_once()
    assert receiver.deliveries == []
    emit_many(runtime, [uuid.uuid4()], 1)
    for _ in range(5):
        worker.run_once()
    assert receiver.deliveries == []


def test_subscriptions_get_only_their_types_and_later_events(runtime, receiver, worker):
    emit_many(runtime, [uuid.uuid4()], 1, type="consent.withdrawn")  # before the subscription
    worker.run_once()
    _, secret = subscribe(runtime, receiver.url, events=["consent.withdrawn"])
    receiver.secret = secret
    emit_many(runtime, [uuid.uuid4()], 1, type="customer.updated")  # not subscribed
    wanted = emit_many(runtime, [uuid.uuid4()], 1, type="consent.withdrawn")
    assert drain(worker, lambda: receiver.wait_for(1, timeout=0))
    for _ in range(3):
        worker.run_once()
    assert receiver.ids() == [str(wanted[0])]


def test_after_rotation_both_secrets_verify_for_a_while(runtime, receiver, worker):
    from sqlmodel import Session

    from vault.events import webhooks

    webhook, old = subscribe(runtime, receiver.url)
    with Session(runtime.engine) as s:
        _, new = webhooks.rotate_secret(
            session=s, envelope=runtime.envelope, webhook_id=webhook.id, by=Caller("cli")
        )
        s.commit()
    assert new != old
    receiver.secret = new
    emit_many(runtime, [uuid.uuid4()], 1)
    assert drain(worker, lambda: receiver.wait_for(1, timeout=0))
    d = receiver.accepted()[0]
    assert len(d.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(d.body, d.headers)
    Webhook(old).verify(d.body, d.headers)


def test_redirects_are_not_followed(runtime, worker):
    target = Receiver().start()
    bouncer = Receiver(redirect_to=target.url).start()
    try:
        subscribe(runtime, bouncer.url)
        emit_many(runtime, [uuid.uuid4()], 1)
        assert drain(worker, lambda: tried(runtime, 0))
        row = deliveries(runtime)[0]
        assert row.status == "failed" and row.last_status_code == 302
        assert len(bouncer.deliveries) == 1
        assert target.deliveries == []
    finally:
        bouncer.stop()
        target.stop()


def test_the_address_is_checked_again_at_delivery(runtime, receiver):
    subscribe(runtime, receiver.url)  # allowed when subscribed
    emit_many(runtime, [uuid.uuid4()], 1)
    strict = runtime.settings.model_copy(
        update={"webhook_allowed_hosts": "", "webhook_allowed_ports": str(receiver.port)}
    )
    from dataclasses import replace

    with Worker(replace(runtime, settings=strict)) as w:
        assert drain(w, lambda: tried(runtime, 0))
    row = deliveries(runtime)[0]
    assert row.status == "failed"
    assert row.last_error == "url_refused:webhook_url_forbidden"
    assert receiver.deliveries == []


def test_a_hostname_is_pinned_to_the_checked_address(runtime, receiver):
    # "hooks.test" resolves (in this test) to the receiver; the request carries the name in
    # Host but connects to the address that was checked.
    def resolve(host, port, **kw):
        assert host in ("hooks.test",)
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    strict = runtime.settings.model_copy(update={"webhook_allowed_hosts": "hooks.test"})
    from dataclasses import replace

    from sqlmodel import Session

    from vault.events import webhooks

    rt = replace(runtime, settings=strict)
    with Session(rt.engine) as s:
        webhooks.create_webhook(
            session=s,
            envelope=rt.envelope,
            settings=strict,
            url=f"http://hooks.test:{receiver.port}/hook",
            events=["customer.updated"],
            by=Caller("cli"),
            subscriber=None,
            resolve=resolve,
        )
        s.commit()
    emit_many(rt, [uuid.uuid4()], 1)
    with Worker(rt, resolve=resolve) as w:
        assert drain(w, lambda: receiver.wait_for(1, timeout=0))
    assert receiver.accepted()[0].headers["host"] == f"hooks.test:{receiver.port}"


def _subscribe_resolved(runtime, url: str, address: str) -> None:
    """A subscription of ``url`` whose host resolved to ``address`` when it was made."""
    from sqlmodel import Session

    from vault.events import webhooks

    def resolve(host, port, **kw):
        return [(2, 1, 6, "", (address, port))]

    with Session(runtime.engine) as s:
        webhooks.create_webhook(
            session=s,
            envelope=runtime.envelope,
            settings=runtime.settings,
            url=url,
            events=["customer.updated"],
            by=Caller("cli"),
            subscriber=None,
            resolve=resolve,
        )
        s.commit()


def test_dns_rebinding_to_a_6to4_wrapped_loopback_is_refused_at_delivery(runtime):
    """The name resolved to a public address when subscribed; at delivery it resolves to
    2002:7f00:1::1, which a 6to4 relay would carry to 127.0.0.1. The worker refuses it."""
    _subscribe_resolved(runtime, "http://hooks.test:8080/hook", "93.184.216.34")
    emit_many(runtime, [uuid.uuid4()], 1)
    asked = []

    def rebound(host, port, **kw):
        asked.append((host, port))
        return [(10, 1, 6, "", ("2002:7f00:1::1", port, 0, 0))]

    with Worker(runtime, resolve=rebound) as w:
        assert drain(w, lambda: tried(runtime, 0))
    row = deliveries(runtime)[0]
    assert asked == [("hooks.test", 8080)]
    assert row.status == "failed"
    assert row.last_error == "url_refused:webhook_url_forbidden"


def test_a_port_no_longer_allowed_is_refused_at_delivery(runtime):
    _subscribe_resolved(runtime, "http://hooks.test:8080/hook", "93.184.216.34")
    emit_many(runtime, [uuid.uuid4()], 1)
    from dataclasses import replace

    strict = replace(
        runtime, settings=runtime.settings.model_copy(update={"webhook_allowed_ports": "443"})
    )

    def public(host, port, **kw):
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    with Worker(strict, resolve=public) as w:
        assert drain(w, lambda: tried(runtime, 0))
    row = deliveries(runtime)[0]
    assert row.status == "failed"
    assert row.last_error == "url_refused:webhook_port_forbidden"
