"""Issue 17 item 2: the client lifecycle (list, show, disable, enable, rotate-secret, delete),
over HTTP and on the command line, each audited, each effective on the very next request."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.factories import create_client, create_customer, record_consent, token
from vault.audit.models import AuditEvent
from vault.auth import service
from vault.auth.models import Client
from vault.cli import app as cli_app


@pytest.fixture
def admin(session, runtime):
    c, _ = create_client(session, runtime, scopes=["admin"])
    return c, {"Authorization": f"Bearer {token(runtime, c)}"}


@pytest.fixture
def crm(session, runtime):
    """An app with a live token for the hot read and for an ordinary dependency route."""
    c, secret = create_client(
        session,
        runtime,
        scopes=["data:read", "consent:read"],
        purposes=["order_fulfilment"],
        name="CRM",
    )
    return c, secret, {"Authorization": f"Bearer {token(runtime, c)}"}


def _token(client, client_id: str, secret: str):
    return client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def _works(client, headers, customer) -> tuple[int, int]:
    """(hot gated read, ordinary route) status for this bearer."""
    read = client.get(
        f"/v1/customers/{customer}/data", params={"purpose": "order_fulfilment"}, headers=headers
    )
    consents = client.get(f"/v1/customers/{customer}/consents", headers=headers)
    return read.status_code, consents.status_code


def details(event: AuditEvent) -> dict:
    raw = event.details or {}
    return json.loads(raw) if isinstance(raw, str) else raw


def _events(session, action: str, client_id: str) -> list[AuditEvent]:
    session.rollback()
    rows = session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars()
    return [e for e in rows if details(e).get("client_id") == client_id]


@pytest.fixture
def customer(session, runtime):
    c = create_customer(session, runtime)
    record_consent(session, runtime, c.id, "personalised_offers")
    return c.id


def test_disable_stops_a_live_token_on_the_next_request_and_enable_restores_it(
    client, session, admin, crm, customer
):
    admin_client, admin_h = admin
    c, secret, h = crm
    assert _works(client, h, customer) == (200, 200)
    r = client.post(f"/v1/clients/{c.id}/disable", headers=admin_h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "disabled" and r.json()["disabled_at"]
    assert _works(client, h, customer) == (401, 401)
    assert _token(client, c.id, secret).json()["error"] == "invalid_client"
    # disabling again changes nothing and records nothing more
    assert client.post(f"/v1/clients/{c.id}/disable", headers=admin_h).status_code == 200
    r = client.post(f"/v1/clients/{c.id}/enable", headers=admin_h)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert r.json()["disabled_at"] is None
    assert _works(client, h, customer) == (200, 200)
    for action in ("client.disabled", "client.enabled"):
        [event] = _events(session, action, c.id)
        assert event.actor_type == "client" and event.actor_id == admin_client.id
        assert event.outcome == "success" and event.request_id


def test_rotate_secret_shows_it_once_and_ends_the_old_secret_and_its_tokens(
    client, session, runtime, admin, crm, customer
):
    _, admin_h = admin
    # over HTTP only for clients without customer-data scopes (see test_separation)
    c, old_secret = create_client(session, runtime, scopes=["audit:read"])
    old_token = {"Authorization": f"Bearer {token(runtime, c)}"}
    assert client.get("/v1/audit/verify", headers=old_token).status_code == 200
    r = client.post(f"/v1/clients/{c.id}/rotate-secret", headers=admin_h)
    assert r.status_code == 200, r.text
    new_secret = r.json()["client_secret"]
    assert new_secret != old_secret and r.json()["secret_rotated_at"]
    assert client.get("/v1/audit/verify", headers=old_token).status_code == 401
    assert _token(client, c.id, old_secret).status_code == 401
    fresh = _token(client, c.id, new_secret)
    assert fresh.status_code == 200
    new_h = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert client.get("/v1/audit/verify", headers=new_h).status_code == 200
    # shown once: never again in a listing or a show
    listing = client.get("/v1/clients", headers=admin_h)
    shown = client.get(f"/v1/clients/{c.id}", headers=admin_h)
    assert new_secret not in listing.text and new_secret not in shown.text
    assert "client_secret" not in shown.json()
    [event] = _events(session, "client.secret_rotated", c.id)
    assert details(event)["secret_version"] == 1 and new_secret not in json.dumps(details(event))


def test_delete_stops_tokens_keeps_the_row_and_the_audit_history(
    client, session, runtime, admin, crm, customer
):
    _, admin_h = admin
    c, secret, h = crm
    assert _works(client, h, customer) == (200, 200)  # leaves data.read events by the client
    r = client.delete(f"/v1/clients/{c.id}", headers=admin_h)
    assert r.status_code == 204 and r.content == b""
    assert _works(client, h, customer) == (401, 401)
    assert _token(client, c.id, secret).json()["error"] == "invalid_client"
    # soft delete: the row stays without a usable secret; its history still names it
    session.expire_all()
    row = session.get(Client, c.id)
    assert row is not None and row.deleted_at is not None
    assert row.secret_hash == service.DELETED_SECRET
    assert service.client_names(session, [c.id]) == {c.id: "CRM"}
    reads = session.execute(
        select(AuditEvent).where(AuditEvent.action == "data.read", AuditEvent.actor_id == c.id)
    ).all()
    assert reads
    shown = client.get(f"/v1/clients/{c.id}", headers=admin_h).json()
    assert shown["status"] == "deleted" and shown["deleted_at"]
    ids = [x["client_id"] for x in client.get("/v1/clients", headers=admin_h).json()["clients"]]
    assert c.id not in ids
    everything = client.get("/v1/clients", params={"include_deleted": True}, headers=admin_h)
    assert c.id in [x["client_id"] for x in everything.json()["clients"]]
    # a deleted client stays deleted
    for path in ("disable", "enable", "rotate-secret"):
        r = client.post(f"/v1/clients/{c.id}/{path}", headers=admin_h)
        assert r.status_code == 409 and r.json()["error"] == "client_deleted", path
    assert client.delete(f"/v1/clients/{c.id}", headers=admin_h).json()["error"] == (
        "client_deleted"
    )
    assert len(_events(session, "client.deleted", c.id)) == 1


def test_a_deleted_client_id_costs_the_same_argon2_check_as_an_unknown_one(
    client, session, runtime, admin, monkeypatch
):
    _, admin_h = admin
    c, secret = create_client(session, runtime, scopes=["audit:read"])
    assert client.delete(f"/v1/clients/{c.id}", headers=admin_h).status_code == 204
    seen = []
    real = service._hasher

    class Spy:
        def verify(self, hashed, secret):
            seen.append(hashed)
            return real.verify(hashed, secret)

    monkeypatch.setattr(service, "_hasher", Spy())
    assert _token(client, c.id, secret).status_code == 401
    assert seen == [service._DUMMY_HASH]


def test_unknown_and_malformed_client_ids(client, admin):
    _, admin_h = admin
    r = client.get(f"/v1/clients/{service.new_client_id()}", headers=admin_h)
    assert r.status_code == 404 and r.json()["error"] == "client_not_found"
    r = client.post("/v1/clients/not-an-id/disable", headers=admin_h)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = client.get("/v1/clients/" + "a" * 65, headers=admin_h)
    assert r.status_code == 422


def test_the_list_shows_no_secret_or_hash(client, session, runtime, admin):
    _, admin_h = admin
    c, secret = create_client(session, runtime, scopes=["audit:read"])
    r = client.get("/v1/clients", headers=admin_h)
    assert r.status_code == 200
    entry = next(x for x in r.json()["clients"] if x["client_id"] == c.id)
    assert entry["scopes"] == ["audit:read"] and entry["status"] == "active"
    assert secret not in r.text and "argon2" not in r.text
    assert client.get("/v1/clients", params={"limit": 1001}, headers=admin_h).status_code == 422


# --- the command line: another process's change, seen by the server's next request ----------


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }


def _vault(env, *args: str, input: str | None = None):
    return CliRunner().invoke(cli_app, ["clients", *args], env=env, input=input)


def test_cli_lifecycle_takes_effect_on_the_servers_next_request(
    client, session, env, crm, customer
):
    c, secret, h = crm
    assert _works(client, h, customer) == (200, 200)  # the token is in the verified cache

    listed = _vault(env, "list")
    assert listed.exit_code == 0, listed.output
    assert c.id in [x["client_id"] for x in json.loads(listed.output)]
    assert secret not in listed.output
    shown = _vault(env, "show", c.id)
    assert json.loads(shown.output)["scopes"] == ["data:read", "consent:read"]

    assert _vault(env, "disable", c.id).exit_code == 0
    assert _works(client, h, customer) == (401, 401)
    assert json.loads(_vault(env, "enable", c.id).output)["status"] == "active"
    assert _works(client, h, customer) == (200, 200)

    rotated = _vault(env, "rotate-secret", c.id, "--json")
    assert rotated.exit_code == 0, rotated.output
    new_secret = json.loads(rotated.output)["client_secret"]
    assert _works(client, h, customer) == (401, 401)  # tokens of the old secret end
    assert _token(client, c.id, secret).status_code == 401
    fresh = _token(client, c.id, new_secret).json()["access_token"]
    h = {"Authorization": f"Bearer {fresh}"}
    assert _works(client, h, customer) == (200, 200)

    refused = _vault(env, "delete", c.id, input="n\n")
    assert refused.exit_code != 0 and _works(client, h, customer) == (200, 200)
    assert _vault(env, "delete", c.id, "--yes").exit_code == 0
    assert _works(client, h, customer) == (401, 401)
    again = _vault(env, "enable", c.id)
    assert again.exit_code == 1 and "client_deleted" in again.output
    assert c.id not in _vault(env, "list").output
    assert c.id in _vault(env, "list", "--include-deleted").output
    for action in ("client.disabled", "client.enabled", "client.secret_rotated", "client.deleted"):
        [event] = _events(session, action, c.id)
        assert event.actor_type == "cli", action


def test_cli_names_an_unknown_client(env):
    r = _vault(env, "disable", "cv_nosuchclient")
    assert r.exit_code == 1 and "client_not_found" in r.output
