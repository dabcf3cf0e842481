"""Issue 17 item 3: separation of duties. Over HTTP an admin registers clients for the audit,
consent-reading and webhook jobs only; ``admin`` and the scopes that reach customer data are
granted by the operator (``vault clients``), each grant an audit event of its own."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.factories import create_client, token
from vault.audit.models import AuditEvent
from vault.auth.models import Client
from vault.auth.scopes import CUSTOMER_DATA_SCOPES, OPERATOR_SCOPES, Scope
from vault.cli import app as cli_app


def _details(event: AuditEvent) -> dict:
    raw = event.details or {}
    return json.loads(raw) if isinstance(raw, str) else raw


def _events(session, action: str) -> list[AuditEvent]:
    session.rollback()
    return list(
        session.execute(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).scalars()
    )


def _count_clients(session) -> int:
    session.rollback()
    return session.execute(select(func.count()).select_from(Client)).scalar_one()


@pytest.fixture
def admin(session, runtime):
    c, _ = create_client(session, runtime, scopes=["admin"])
    return c, {"Authorization": f"Bearer {token(runtime, c)}"}


def test_the_customer_data_scopes_and_admin_are_the_operators():
    """The five of issue 17, consent:confirm (issue 16: it confirms double opt-ins) and
    contacts:write (issue 18: its per-line answers tell which customer ids exist)."""
    assert {
        "data:read",
        "dsr:execute",
        "customers:write",
        "consent:write",
        "selfservice:issue",
        "consent:confirm",
        "contacts:write",
    } == CUSTOMER_DATA_SCOPES
    assert CUSTOMER_DATA_SCOPES | {"admin"} == OPERATOR_SCOPES


@pytest.mark.parametrize("scope", sorted(OPERATOR_SCOPES))
def test_admin_over_http_cannot_grant_admin_or_customer_data_scopes(client, session, admin, scope):
    admin_client, h = admin
    before = _count_clients(session)
    body = {"name": "sneaky", "scopes": ["audit:read", scope], "purposes": ["newsletter"]}
    r = client.post("/v1/clients", json=body, headers=h)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "operator_required" and "client_secret" not in r.text
    assert scope in r.json()["detail"]
    assert _count_clients(session) == before  # nothing created
    [refused] = _events(session, "client.grant_refused")
    assert (refused.actor_type, refused.actor_id) == ("client", admin_client.id)
    assert (refused.outcome, refused.reason) == ("denied", "operator_required")
    assert _details(refused)["scopes"] == scope and _details(refused)["operation"] == "create"
    assert not [e for e in _events(session, "client.created") if e.actor_type == "client"]


def test_admin_over_http_registers_clients_without_customer_data_scopes(client, session, admin):
    _, h = admin
    body = {"name": "Audit desk", "scopes": ["audit:read", "consent:read", "webhooks:manage"]}
    r = client.post("/v1/clients", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()["client_id"]
    assert not [e for e in _events(session, "client.scope_granted") if created in str(e.details)]


def test_admin_over_http_cannot_take_over_a_data_client_by_rotating_its_secret(
    client, session, runtime, admin
):
    _, h = admin
    crm, secret = create_client(session, runtime, scopes=["data:read"], purposes=["newsletter"])
    other_admin, admin_secret = create_client(session, runtime, scopes=["admin"])
    for target, its_secret in ((crm, secret), (other_admin, admin_secret)):
        r = client.post(f"/v1/clients/{target.id}/rotate-secret", headers=h)
        assert r.status_code == 403 and r.json()["error"] == "operator_required", r.text
        assert "client_secret" not in r.json()
        # the secret is unchanged: the app keeps working
        ok = client.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": target.id,
                "client_secret": its_secret,
            },
        )
        assert ok.status_code == 200
    refused = _events(session, "client.grant_refused")
    assert [_details(e)["operation"] for e in refused] == ["rotate_secret", "rotate_secret"]
    assert [_details(e)["client_id"] for e in refused] == [crm.id, other_admin.id]
    # disabling takes access away, so any admin may do it
    assert client.post(f"/v1/clients/{crm.id}/disable", headers=h).status_code == 200


def test_every_grant_of_a_customer_data_scope_is_its_own_audit_event(settings, session):
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }
    r = CliRunner().invoke(
        cli_app,
        [
            "clients",
            "create",
            "--name",
            "CRM",
            "--scopes",
            "data:read dsr:execute audit:read admin",
            "--purposes",
            "newsletter order_fulfilment",
            "--json",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    client_id = json.loads(r.output)["client_id"]
    grants = _events(session, "client.scope_granted")
    assert [(_details(e)["client_id"], _details(e)["scope"]) for e in grants] == [
        (client_id, Scope.DATA_READ),
        (client_id, Scope.DSR_EXECUTE),
        (client_id, Scope.ADMIN),
    ]
    assert all(e.actor_type == "cli" and e.outcome == "success" for e in grants)
    assert _details(grants[0])["purposes"] == "newsletter order_fulfilment"
    assert "purposes" not in _details(grants[2])  # admin reaches no purpose
