"""HTTP: /v1/webhooks (scope webhooks:manage) and /metrics."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.events.helpers import deliveries, emit_many, subscribe
from tests.factories import auth_headers, create_client, token
from vault.audit.models import AuditEvent
from vault.auth.models import Client
from vault.events import queue
from vault.events.models import Webhook
from vault.events.outbox import EVENT_TYPES
from vault.events.secrets import decrypt_secret
from vault.events.webhooks import READ_WITH

ROUTES = [
    ("post", "/v1/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["consent.withdrawn"]}),
    ("get", "/v1/webhooks", None),
    ("get", "/v1/webhooks/{id}", None),
    ("post", "/v1/webhooks/{id}/disable", None),
    ("post", "/v1/webhooks/{id}/rotate-secret", None),
    ("post", "/v1/webhooks/{id}/redeliver", None),
    ("get", "/v1/webhooks/{id}/deliveries", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_routes_need_a_token_and_the_scope(client, session, runtime, method, path, body):
    path = path.format(id=uuid.uuid4())
    kwargs = {"json": body} if body else {}
    r = client.request(method, path, **kwargs)
    assert r.status_code == 401
    assert r.json()["error"] == "not_authenticated"
    wrong = auth_headers(session, runtime, "consent:write", "admin")
    session.rollback()
    r = client.request(method, path, headers=wrong, **kwargs)
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"


@pytest.fixture
def manager(session, runtime):
    """A webhook manager whose scopes read every event type (consent:read, data:read)."""
    headers = auth_headers(
        session, runtime, "webhooks:manage", "consent:read", "data:read", purposes=["newsletter"]
    )
    session.rollback()
    return headers


def _audit(runtime, action: str) -> list[AuditEvent]:
    with Session(runtime.engine) as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_create_returns_the_secret_once_and_stores_it_encrypted(client, runtime, manager):
    r = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["consent.withdrawn", "customer.erased"]},
        headers=manager,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["events"] == ["consent.withdrawn", "customer.erased"]
    assert body["status"] == "active"
    with Session(runtime.engine) as s:
        row = s.get(Webhook, uuid.UUID(body["id"]))
        assert row is not None
        assert secret.encode() not in row.secret_ciphertext
        assert secret[6:].encode() not in row.secret_ciphertext
        assert decrypt_secret(runtime.envelope, row.id, row.secret_ciphertext) == secret
        assert "***" in repr(row)
    listed = client.get("/v1/webhooks", headers=manager).json()["webhooks"]
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]
    one = client.get(f"/v1/webhooks/{body['id']}", headers=manager).json()
    assert "secret" not in one and one["url"] == "http://127.0.0.1:9/hook"
    (audit,) = _audit(runtime, "webhook.created")
    assert audit.actor_type == "client" and audit.actor_id
    assert body["id"] in audit.details
    assert secret not in (audit.details or "")


def test_disable_rotate_and_their_audit(client, runtime, manager):
    created = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["consent.granted"]},
        headers=manager,
    ).json()
    wid = created["id"]
    r = client.post(f"/v1/webhooks/{wid}/rotate-secret", headers=manager)
    assert r.status_code == 200
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != created["secret"]
    r = client.post(f"/v1/webhooks/{wid}/disable", headers=manager)
    assert r.status_code == 200
    assert r.json()["status"] == "disabled" and r.json()["disabled_at"]
    r = client.post(f"/v1/webhooks/{wid}/rotate-secret", headers=manager)
    assert r.status_code == 409 and r.json()["error"] == "webhook_disabled"
    r = client.post(f"/v1/webhooks/{wid}/redeliver", headers=manager)
    assert r.status_code == 409
    assert len(_audit(runtime, "webhook.secret_rotated")) == 1
    assert len(_audit(runtime, "webhook.disabled")) == 1


def test_unknown_webhook_and_event(client, manager):
    missing = uuid.uuid4()
    for method, path in [
        ("get", f"/v1/webhooks/{missing}"),
        ("post", f"/v1/webhooks/{missing}/disable"),
        ("post", f"/v1/webhooks/{missing}/rotate-secret"),
        ("post", f"/v1/webhooks/{missing}/redeliver"),
        ("get", f"/v1/webhooks/{missing}/deliveries"),
    ]:
        r = client.request(method, path, headers=manager)
        assert r.status_code == 404, path
        assert r.json()["error"] == "webhook_not_found"


def _own_hook(client, manager, url: str) -> tuple[str, str]:
    """A subscription the manager made itself (an app manages only its own): (id, secret)."""
    r = client.post(
        "/v1/webhooks", json={"url": url, "events": ["customer.updated"]}, headers=manager
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["secret"]


def test_redeliver_an_unknown_event_is_404(client, runtime, manager):
    webhook_id, _ = _own_hook(client, manager, "http://127.0.0.1:9/hook")
    r = client.post(
        f"/v1/webhooks/{webhook_id}/redeliver",
        json={"event_id": str(uuid.uuid4())},
        headers=manager,
    )
    assert r.status_code == 404 and r.json()["error"] == "delivery_not_found"
    assert _audit(runtime, "webhook.redelivered") == []


@pytest.mark.parametrize(
    "events", [[], ["consent.deleted"], ["consent.granted", "x"], "consent.granted"]
)
def test_event_types_are_validated(client, manager, events):
    r = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "events": events}, headers=manager
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.0.0.1/hook", "webhook_url_forbidden"),
        ("http://192.168.1.20/hook", "webhook_url_forbidden"),
        ("http://127.0.0.2/hook", "webhook_url_forbidden"),  # loopback, not allowlisted
        ("http://169.254.169.254/latest/meta-data/", "webhook_url_forbidden"),
        ("http://[::1]/hook", "webhook_url_forbidden"),
        ("http://[::ffff:10.0.0.1]/hook", "webhook_url_forbidden"),
        ("http://localhost/hook", "webhook_url_forbidden"),  # a name resolving to loopback
        ("http://0.0.0.0/hook", "webhook_url_forbidden"),
        ("http://224.0.0.1/hook", "webhook_url_forbidden"),
        ("file:///etc/passwd", "webhook_url_invalid"),
        ("gopher://127.0.0.1:70/_x", "webhook_url_invalid"),
        ("ftp://example.com/", "webhook_url_invalid"),
        ("http://user:pw@127.0.0.1/hook", "webhook_url_invalid"),
        ("hook", "webhook_url_invalid"),
        ("http://no-such-host.invalid/hook", "webhook_host_unresolvable"),
        # issue 17: IPv6 addresses that wrap a non-public IPv4 address, ports
        ("http://[2002:7f00:1::1]/hook", "webhook_url_forbidden"),  # 6to4 of 127.0.0.1
        ("http://[2002:a9fe:a9fe::]/latest/meta-data/", "webhook_url_forbidden"),  # metadata
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/h", "webhook_url_forbidden"),  # Teredo
        ("http://[::127.0.0.1]/hook", "webhook_url_forbidden"),  # IPv4-compatible
        ("http://[::ffff:169.254.169.254]/hook", "webhook_url_forbidden"),  # IPv4-mapped
        ("http://127.0.0.1:0/hook", "webhook_url_invalid"),  # port 0, even allowlisted
        ("https://93.184.216.34:6379/hook", "webhook_port_forbidden"),
        ("http://example.com:25/", "webhook_port_forbidden"),  # refused before resolving
    ],
)
def test_ssrf_targets_are_refused(client, runtime, manager, url, code):
    r = client.post(
        "/v1/webhooks", json={"url": url, "events": ["consent.withdrawn"]}, headers=manager
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code
    with Session(runtime.engine) as s:
        assert s.execute(select(Webhook)).first() is None


def test_loopback_needs_the_allowlist(client, session, runtime, settings, manager):
    # 127.0.0.1 is allowlisted in these tests; without it the same URL is refused
    ok = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:8080/hook", "events": ["consent.withdrawn"]},
        headers=manager,
    )
    assert ok.status_code == 201
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from vault.app import create_app

    strict = replace(runtime, settings=settings.model_copy(update={"webhook_allowed_hosts": ""}))
    with TestClient(create_app(strict), raise_server_exceptions=False) as c:
        r = c.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:8080/hook", "events": ["consent.withdrawn"]},
            headers=manager,
        )
        assert r.status_code == 422 and r.json()["error"] == "webhook_url_forbidden"
    with Session(runtime.engine) as s:
        assert len(s.execute(select(Webhook)).all()) == 1  # only the allowlisted one


def test_deliveries_list(client, runtime, manager, receiver):
    from vault.events.worker import Worker

    webhook_id, secret = _own_hook(client, manager, receiver.url)
    receiver.secret = secret
    ids = emit_many(runtime, [uuid.uuid4()], 2)
    with Worker(runtime) as w:
        w.run_once()
        w.run_once()
    r = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=manager)
    assert r.status_code == 200
    got = r.json()["deliveries"]
    assert [d["event_id"] for d in got] == [str(i) for i in reversed(ids)]
    assert {d["status"] for d in got} == {"delivered"}
    r = client.get(f"/v1/webhooks/{webhook_id}/deliveries?status=dead", headers=manager)
    assert r.json()["deliveries"] == []


def test_metrics_count_deliveries_by_state(client, runtime, receiver):
    from vault.events.worker import Worker

    subscribe(runtime, receiver.url)
    emit_many(runtime, [uuid.uuid4(), uuid.uuid4()], 1)
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "vault_outbox_undispatched_events 2.0" in text
    assert 'vault_webhook_deliveries{state="pending"} 0.0' in text
    with Worker(runtime) as w:
        w.run_once()
    text = client.get("/metrics").text
    assert 'vault_webhook_deliveries{state="delivered"} 2.0' in text
    assert 'vault_webhook_deliveries{state="failed"} 0.0' in text
    assert 'vault_webhook_deliveries{state="dead"} 0.0' in text
    assert "vault_outbox_undispatched_events 0.0" in text


# --- issue 17: a client subscribes only to what its own scopes read ---------------------------

ALLOWED = [
    ((), set()),
    (
        ("consent:read",),
        {"consent.granted", "consent.withdrawn", "consent.expired", "preference.changed"},
    ),
    (("customers:write",), {"customer.updated"}),
    (
        ("data:read",),
        {
            "customer.updated",
            "customer.restricted",
            "customer.objected",
            "customer.erased",
            "preference.changed",
        },
    ),
    (("dsr:execute",), {"customer.restricted", "customer.objected", "customer.erased"}),
    (("audit:read", "admin", "selfservice:issue", "consent:write"), set()),
]


def test_every_event_type_names_the_scopes_that_read_it():
    assert set(READ_WITH) == EVENT_TYPES
    assert all(READ_WITH.values())
    assert not any("webhooks:manage" in scopes for scopes in READ_WITH.values())


@pytest.mark.parametrize(
    ("extra", "allowed"), ALLOWED, ids=lambda v: "+".join(sorted(v)) or "alone"
)
def test_webhooks_manage_subscribes_only_to_what_its_scopes_read(
    client, session, runtime, extra, allowed
):
    headers = auth_headers(session, runtime, "webhooks:manage", *extra, purposes=["newsletter"])
    session.rollback()
    for event in sorted(EVENT_TYPES):
        r = client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": [event]},
            headers=headers,
        )
        if event in allowed:
            assert r.status_code == 201, (event, r.text)
        else:
            assert r.status_code == 403, (event, r.text)
            body = r.json()
            assert body["error"] == "event_type_not_permitted"
            assert event in body["detail"]
            assert " or ".join(sorted(READ_WITH[event])) in body["detail"]
    with Session(runtime.engine) as s:
        assert len(s.execute(select(Webhook)).all()) == len(allowed)
    assert len(_audit(runtime, "webhook.created")) == len(allowed)


def test_data_read_without_a_registered_purpose_reads_no_event(client, session, runtime):
    """data:read reads only for the client's purposes; with none it reads nothing, so it is no
    ticket to customer events."""
    headers = auth_headers(session, runtime, "webhooks:manage", "data:read")
    session.rollback()
    r = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["customer.erased"]},
        headers=headers,
    )
    assert r.status_code == 403 and r.json()["error"] == "event_type_not_permitted"


def test_one_unreadable_type_refuses_the_whole_subscription(client, session, runtime):
    headers = auth_headers(session, runtime, "webhooks:manage", "consent:read")
    session.rollback()
    r = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["consent.withdrawn", "customer.erased"]},
        headers=headers,
    )
    assert r.status_code == 403 and r.json()["error"] == "event_type_not_permitted"
    assert "customer.erased" in r.json()["detail"]
    assert "consent.withdrawn" not in r.json()["detail"]
    assert "www-authenticate" not in r.headers  # the token is fine; the request asks too much
    with Session(runtime.engine) as s:
        assert s.execute(select(Webhook)).first() is None


def test_dispatch_follows_the_creators_scopes_as_they_are_now(client, session, runtime):
    """A scope taken from the client that made a subscription stops the events it read; a
    disabled client's subscriptions get nothing; the operator's (CLI) are not limited."""
    from datetime import UTC, datetime

    app, _ = create_client(
        session,
        runtime,
        scopes=["webhooks:manage", "consent:read", "data:read"],
        purposes=["newsletter"],
    )
    headers = {"Authorization": f"Bearer {token(runtime, app)}"}
    session.rollback()
    r = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/app", "events": ["consent.withdrawn", "customer.erased"]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    app_hook = uuid.UUID(r.json()["id"])
    cli_hook, _ = subscribe(runtime, "http://127.0.0.1:9/cli", ["customer.erased"])

    def round_of(type_: str) -> list[tuple[uuid.UUID, str]]:
        before = {d.id for d in deliveries(runtime)}
        emit_many(runtime, [uuid.uuid4()], 1, type=type_)
        with Session(runtime.engine) as s:
            queue.dispatch(session=s, now=datetime.now(UTC))
            s.commit()
        return sorted((d.webhook_id, type_) for d in deliveries(runtime) if d.id not in before)

    assert round_of("customer.erased") == sorted(
        [(app_hook, "customer.erased"), (cli_hook.id, "customer.erased")]
    )
    with Session(runtime.engine) as s:  # data:read taken from the client
        row = s.get(Client, app.id)
        row.scopes = "webhooks:manage consent:read"
        s.add(row)
        s.commit()
    assert round_of("customer.erased") == [(cli_hook.id, "customer.erased")]
    assert round_of("consent.withdrawn") == [(app_hook, "consent.withdrawn")]
    with Session(runtime.engine) as s:  # the client disabled
        row = s.get(Client, app.id)
        row.disabled_at = datetime.now(UTC)
        s.add(row)
        s.commit()
    assert round_of("consent.withdrawn") == []
    assert round_of("customer.erased") == [(cli_hook.id, "customer.erased")]
    # the subscription itself is unchanged: it still shows what it asked for
    from vault.events import webhooks
    from vault.provenance import CLI

    with Session(runtime.engine) as s:  # the operator's view (the app itself is disabled)
        one = webhooks.public(webhooks.get_webhook(session=s, webhook_id=app_hook, by=CLI))
    assert one.events == ["consent.withdrawn", "customer.erased"] and one.status == "active"


def test_a_client_sees_and_manages_only_the_subscriptions_it_created(client, session, runtime):
    """One webhook admin app must not list, disable, rotate the secret of, redeliver or read the
    deliveries of another app's subscription: 404 as if it did not exist; the CLI sees all."""
    from vault.events import webhooks
    from vault.provenance import CLI

    owner = auth_headers(session, runtime, "webhooks:manage", "consent:read")
    other = auth_headers(session, runtime, "webhooks:manage", "consent:read")
    session.rollback()
    created = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["consent.granted"]},
        headers=owner,
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert [w["id"] for w in client.get("/v1/webhooks", headers=owner).json()["webhooks"]] == [wid]
    assert client.get("/v1/webhooks", headers=other).json()["webhooks"] == []
    for method, path in [
        ("get", "/v1/webhooks/{id}"),
        ("post", "/v1/webhooks/{id}/disable"),
        ("post", "/v1/webhooks/{id}/rotate-secret"),
        ("post", "/v1/webhooks/{id}/redeliver"),
        ("get", "/v1/webhooks/{id}/deliveries"),
    ]:
        r = client.request(method, path.format(id=wid), headers=other)
        assert r.status_code == 404 and r.json()["error"] == "webhook_not_found", (path, r.text)
    assert client.get(f"/v1/webhooks/{wid}", headers=owner).json()["status"] == "active"
    with Session(runtime.engine) as s:
        assert [str(w.id) for w in webhooks.list_webhooks(session=s, by=CLI)] == [wid]
