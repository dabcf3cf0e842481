"""Authorization matrix: every route x every kind of caller, generated from one table.

``ROUTES`` names each route once: who may call it (public, a set of scopes any of which
suffices, or a self-service session) and one valid request. ``expected()`` turns that into the
answer each caller must get; there is no per-caller list to forget. A route the app serves but
the table lacks fails ``test_every_route_is_in_the_table``, so a new route cannot slip past.

Callers: nobody, an expired token (every scope), each scope alone, a data client registered
for another purpose, an auditor (audit:read + consent:read), a webhook manager that may read
consent (webhooks:manage + consent:read), and the self-service session of another customer.
Every denied call must change nothing; the permitted call comes last.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from tests import factories
from tests.staff import helpers as staff_helpers
from vault.app import create_app
from vault.auth.scopes import Scope
from vault.auth.service import ACCESS_TOKEN_TYP
from vault.config import Settings
from vault.crypto.unsubscribe import UnsubscribeTokens
from vault.db import reader
from vault.provenance import Caller
from vault.runtime import Runtime
from vault.selfservice import sessions as selfservice_sessions
from vault.selfservice.pages import SESSION_COOKIE
from vault.staff.pages import SESSION_COOKIE as STAFF_SESSION_COOKIE
from vault.staff.sessions import csrf_token as staff_csrf

PUBLIC = "public"  # anybody, no credentials
SELF = "self"  # a self-service session cookie (the customer is the session's own)
LINK = "link"  # the magic link in the path is the credential
UNSUB = "unsubscribe"  # the one-click unsubscribe token in the path is the credential
CONFIRM_LINK = "confirm_link"  # a double opt-in confirmation link: its token is the capability
STAFF = "staff"  # a staff console session of ``Route.role`` (any role when empty)
STAFF_LOGIN = "staff_login"  # name, password and TOTP code on the staff sign-in form

# A realistic read-only auditor, and a data client registered for a purpose the table's
# requests never use.
AUDITOR_SCOPES = (Scope.AUDIT_READ, Scope.CONSENT_READ)
# webhooks:manage alone reads no event type: subscribing to consent events needs consent:read
WEBHOOK_MANAGER_SCOPES = (Scope.WEBHOOKS_MANAGE, Scope.CONSENT_READ)
OTHER_PURPOSE = "analytics"
PURPOSE = "personalised_offers"
PAUSE_UNTIL = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()  # /me's pause

SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy")


# --- the world: one app per module and backend, its callers minted once ---------------------


@dataclass
class World:
    runtime: Runtime
    client: TestClient
    tokens: dict[str, str]  # caller -> bearer token
    setup: dict[str, str]  # headers with every scope, for arranging state
    credentials: dict[str, str]  # a client id and secret, for the token endpoint


@dataclass
class Target:
    """Fresh objects one route test acts on."""

    customer: uuid.UUID  # "A": the customer every request names
    other: uuid.UUID  # "B": owner of the self-service session used as a caller
    other_cookie: str
    own_cookie: str  # A's session, for the permitted call on /me routes
    own_csrf: str
    webhook: str
    dsr_request: str
    confirmation_token: str
    receipt: str
    erased: uuid.UUID  # "C": erased, so it has an erasure certificate
    app_client: str  # an app client (audit:read) the admin routes act on
    unsubscribe: str  # A's one-click unsubscribe token for PURPOSE


CALLERS = [
    "nobody",
    "expired",
    *(f"scope:{s.value}" for s in Scope),
    "other_purpose",
    "auditor",
    "webhook_manager",
    "selfservice_other",
]


@pytest.fixture(scope="module")
def world(template, tmp_path_factory) -> Iterator[World]:
    url, name = template.fresh()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("authz") / "vault-data",
        database_url=url,
        public_url="http://testserver",
        audit_seal_interval=0,
        webhook_allowed_hosts="127.0.0.1",
        # every caller posts the /me link form from the one test address, at once
        rate_limit_link_request_ip="10000/hour",
        selfservice_link_request_seconds=0,
        _env_file=None,
    )
    runtime = Runtime.build(settings)
    purposes = list(runtime.policy.purposes)
    tokens: dict[str, str] = {}
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        everything, secret = factories.create_client(
            session, runtime, scopes=[s.value for s in Scope], purposes=purposes
        )
        for scope in Scope:
            c, _ = factories.create_client(
                session, runtime, scopes=[scope.value], purposes=purposes
            )
            tokens[f"scope:{scope.value}"] = factories.token(runtime, c)
        c, _ = factories.create_client(
            session, runtime, scopes=[Scope.DATA_READ.value], purposes=[OTHER_PURPOSE]
        )
        tokens["other_purpose"] = factories.token(runtime, c)
        c, _ = factories.create_client(session, runtime, scopes=[s.value for s in AUDITOR_SCOPES])
        tokens["auditor"] = factories.token(runtime, c)
        c, _ = factories.create_client(
            session, runtime, scopes=[s.value for s in WEBHOOK_MANAGER_SCOPES]
        )
        tokens["webhook_manager"] = factories.token(runtime, c)
        now = int(time.time())
        tokens["expired"] = runtime.signer.sign(
            {
                "iss": settings.issuer,
                "aud": settings.token_audience,
                "sub": everything.id,
                "client_id": everything.id,
                "scope": " ".join(s.value for s in Scope),
                "iat": now - 600,
                "exp": now - 60,
                "jti": "expired",
            },
            typ=ACCESS_TOKEN_TYP,
        )
        setup = {"Authorization": f"Bearer {factories.token(runtime, everything)}"}
    app = create_app(runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        credentials = {"client_id": everything.id, "client_secret": secret}
        yield World(runtime, client, tokens, setup, credentials)
    runtime.engine.dispose()
    template.drop(name)


def _login(world: World, customer_id: uuid.UUID) -> str:
    """A self-service session cookie for the customer (link issued through the service, so
    the link endpoint's rate limit is not in play here)."""
    path = _link(world, customer_id)
    with TestClient(world.client.app, raise_server_exceptions=False) as browser:
        r = browser.get(path, follow_redirects=False)
        assert r.status_code == 303, r.text
        return r.cookies[SESSION_COOKIE]


def _link(world: World, customer_id: uuid.UUID) -> str:
    rt = world.runtime
    with Session(reader(rt.engine), expire_on_commit=False) as session:
        link = selfservice_sessions.issue_link(
            session=session, settings=rt.settings, customer_id=customer_id, by=Caller("test")
        )
        session.commit()
    return link.url[len(rt.settings.public_url) :]


def _confirmation(world: World, customer_id: uuid.UUID) -> str:
    """A fresh double opt-in token for the customer (the setup client holds consent:confirm,
    so the token comes back instead of going into a mail); each supersedes the one before."""
    r = world.client.post(
        f"/v1/customers/{customer_id}/consents",
        headers=world.setup,
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
    )
    assert r.status_code == 201 and r.json()["confirmation_token"], r.text
    return r.json()["confirmation_token"]


def _csrf(world: World, cookie: str) -> str:
    world.client.cookies.clear()
    world.client.cookies.set(SESSION_COOKIE, cookie)
    r = world.client.get("/me/consents")
    world.client.cookies.clear()
    assert r.status_code == 200
    return r.text.split('name="csrf_token" value="', 1)[1][:64]


@pytest.fixture
def target(world: World) -> Target:
    c, h = world.client, world.setup

    def customer(prefix: str) -> uuid.UUID:
        r = c.post(
            "/v1/customers",
            headers=h,
            json={
                "attributes": {
                    "email": factories.unique_email(prefix),
                    "first_name": "Greta",
                    "last_name": f"Zielkundin{prefix.title()}",
                }
            },
        )
        assert r.status_code == 201, r.text
        return uuid.UUID(r.json()["id"])

    a, b = customer("anna"), customer("bert")
    r = c.post(
        f"/v1/customers/{a}/consents",
        headers=h,
        json={"purpose": PURPOSE, "status": "granted", "channel": "web"},
    )
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    r = c.post(
        f"/v1/customers/{a}/consents",
        headers=h,
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
    )
    assert r.status_code == 201 and r.json()["confirmation_token"], r.text
    confirmation = r.json()["confirmation_token"]
    # the webhook manager's own subscription: an app manages only the subscriptions it created
    r = c.post(
        "/v1/webhooks",
        headers={"Authorization": f"Bearer {world.tokens['webhook_manager']}"},
        json={"url": "http://127.0.0.1:9/hook", "events": ["consent.granted"]},
    )
    assert r.status_code == 201, r.text
    webhook = r.json()["id"]
    r = c.post("/v1/dsr/requests", headers=h, json={"customer_id": str(a), "kind": "access"})
    assert r.status_code == 201, r.text
    own = _login(world, a)
    erased = customer("carla")
    assert c.delete(f"/v1/customers/{erased}", headers=h).status_code == 204
    with Session(reader(world.runtime.engine), expire_on_commit=False) as session:
        app_client, _ = factories.create_client(session, world.runtime, scopes=["audit:read"])
    return Target(
        customer=a,
        other=b,
        other_cookie=_login(world, b),
        own_cookie=own,
        own_csrf=_csrf(world, own),
        webhook=webhook,
        dsr_request=r.json()["id"],
        confirmation_token=confirmation,
        receipt=receipt,
        erased=erased,
        app_client=app_client.id,
        unsubscribe=UnsubscribeTokens(world.runtime.envelope.keys.index_key).make(a, PURPOSE),
    )


# --- the table --------------------------------------------------------------------------------

Request = Callable[[Target], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    who: str | frozenset[str]  # PUBLIC, SELF, LINK, or the scopes any one of which suffices
    ok: int  # the permitted caller's status
    request: Request  # kwargs for TestClient.request, without method and auth
    # what the request asks for needs one of these scopes too (a webhook's event types), or
    # else 403 with ``body_error``
    body_scopes: frozenset[str] = frozenset()
    body_error: str = ""
    # the object belongs to this caller: any other caller with the scope gets 404 ``not_found``
    owner: str | None = None
    not_found: str = ""
    # STAFF routes: the role whose session makes the permitted call ("": any role; every role
    # and the other denials are in tests/staff/test_authz_matrix.py)
    role: str = ""


def scopes(*names: Scope) -> frozenset[str]:
    return frozenset(n.value for n in names)


def get(url: str | Callable[[Target], str], **kw: Any) -> Request:
    return lambda t: {"url": url(t) if callable(url) else url, **kw}


def send(url: str | Callable[[Target], str], body: Callable[[Target], Any] | Any = None) -> Request:
    def build(t: Target) -> dict[str, Any]:
        out: dict[str, Any] = {"url": url(t) if callable(url) else url}
        if body is not None:
            out["json"] = body(t) if callable(body) else body
        return out

    return build


def form(url: str | Callable[[Target], str], data: dict[str, str] | None = None) -> Request:
    def build(t: Target) -> dict[str, Any]:
        return {
            "url": url(t) if callable(url) else url,
            "data": {"csrf_token": t.own_csrf, **(data or {})},
        }

    return build


def staff_form(
    url: str | Callable[[Target], str],
    data: dict[str, str] | Callable[[Target], dict[str, str]] | None = None,
) -> Request:
    """A staff console form; the permitted caller's CSRF token is added in ``_call``."""
    return lambda t: {
        "url": url(t) if callable(url) else url,
        "data": dict((data(t) if callable(data) else data) or {}),
    }


def office(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/staff/office/customers/{t.customer}{suffix}"


def office_request(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/staff/office/requests/{t.dsr_request}{suffix}"


PRIVACY_OFFICER = {"role": "privacy_officer"}


def cust(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/v1/customers/{t.customer}{suffix}"


# the target webhook is the webhook manager's; another app holding webhooks:manage gets 404
OWN_HOOK: dict[str, Any] = {"owner": "webhook_manager", "not_found": "webhook_not_found"}


def hook(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/v1/webhooks/{t.webhook}{suffix}"


def dsr(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/v1/dsr/requests/{t.dsr_request}{suffix}"


def _import_body(t: Target) -> dict[str, Any]:
    line = {"attributes": {"email": factories.unique_email("import")}}
    return {"content": json.dumps(line) + "\n", "headers": {"Content-Type": "application/x-ndjson"}}


def _contacts_body(t: Target) -> dict[str, Any]:
    line = {
        "customer_id": str(t.customer),
        "purpose": PURPOSE,
        "contact_channel": "email",
        "sent_at": "2026-01-05T09:00:00+00:00",
    }
    return {"content": json.dumps(line) + "\n", "headers": {"Content-Type": "application/x-ndjson"}}


def _new_client(t: Target) -> dict[str, Any]:
    return {"name": "crm", "scopes": ["consent:read"]}


def app_client(suffix: str = "") -> Callable[[Target], str]:
    return lambda t: f"/v1/clients/{t.app_client}{suffix}"


S = Scope
DSR = scopes(S.DSR_EXECUTE)
ROUTES: dict[tuple[str, str], Route] = {
    # public documents and probes
    ("GET", "/openapi.json"): Route(PUBLIC, 200, get("/openapi.json")),
    ("GET", "/docs"): Route(PUBLIC, 200, get("/docs")),
    ("GET", "/docs/oauth2-redirect"): Route(PUBLIC, 200, get("/docs/oauth2-redirect")),
    ("GET", "/docs/static"): Route(PUBLIC, 200, get("/docs/static/apidocs/swagger-init.js")),
    ("GET", "/redoc"): Route(PUBLIC, 200, get("/redoc")),
    ("GET", "/healthz"): Route(PUBLIC, 200, get("/healthz")),
    ("GET", "/metrics"): Route(PUBLIC, 200, get("/metrics")),
    ("GET", "/.well-known/jwks.json"): Route(PUBLIC, 200, get("/.well-known/jwks.json")),
    ("GET", "/v1/purposes"): Route(PUBLIC, 200, get("/v1/purposes")),
    ("GET", "/me/static"): Route(PUBLIC, 200, get("/me/static/style.css")),
    # the token endpoint authenticates with the client's secret; a bearer header is ignored
    ("POST", "/v1/oauth/token"): Route(PUBLIC, 200, get("/v1/oauth/token")),
    # admin
    ("POST", "/v1/clients"): Route(scopes(S.ADMIN), 201, send("/v1/clients", _new_client)),
    ("GET", "/v1/clients"): Route(scopes(S.ADMIN), 200, get("/v1/clients")),
    ("GET", "/v1/clients/{client_id}"): Route(scopes(S.ADMIN), 200, get(app_client())),
    ("POST", "/v1/clients/{client_id}/disable"): Route(
        scopes(S.ADMIN), 200, send(app_client("/disable"))
    ),
    ("POST", "/v1/clients/{client_id}/enable"): Route(
        scopes(S.ADMIN), 200, send(app_client("/enable"))
    ),
    ("POST", "/v1/clients/{client_id}/rotate-secret"): Route(
        scopes(S.ADMIN), 200, send(app_client("/rotate-secret"))
    ),
    ("DELETE", "/v1/clients/{client_id}"): Route(scopes(S.ADMIN), 204, send(app_client())),
    # customers
    ("POST", "/v1/customers"): Route(
        scopes(S.CUSTOMERS_WRITE),
        201,
        send("/v1/customers", lambda t: {"attributes": {"email": factories.unique_email()}}),
    ),
    ("PATCH", "/v1/customers/{customer_id}"): Route(
        scopes(S.CUSTOMERS_WRITE), 200, send(cust(), {"attributes": {"first_name": "Gerda"}})
    ),
    ("POST", "/v1/customers/import"): Route(
        scopes(S.CUSTOMERS_WRITE), 200, lambda t: {"url": "/v1/customers/import", **_import_body(t)}
    ),
    ("POST", "/v1/customers/lookup"): Route(
        scopes(S.CUSTOMERS_WRITE),
        404,  # permitted; nobody has this address
        send("/v1/customers/lookup", {"attribute": "email", "value": "niemand@example.de"}),
    ),
    # consent
    ("POST", "/v1/customers/{customer_id}/consents"): Route(
        scopes(S.CONSENT_WRITE),
        201,
        send(cust("/consents"), {"purpose": PURPOSE, "status": "withdrawn", "channel": "app"}),
    ),
    ("POST", "/v1/consents/confirm"): Route(
        scopes(S.CONSENT_CONFIRM),
        200,
        send("/v1/consents/confirm", lambda t: {"token": t.confirmation_token}),
    ),
    ("GET", "/v1/customers/{customer_id}/consents"): Route(
        scopes(S.CONSENT_READ), 200, get(cust("/consents"))
    ),
    ("GET", "/v1/customers/{customer_id}/consents/history"): Route(
        scopes(S.CONSENT_READ), 200, get(cust("/consents/history"))
    ),
    ("GET", "/v1/customers/{customer_id}/consents/dossier"): Route(
        scopes(S.CONSENT_READ), 200, get(cust("/consents/dossier"))
    ),
    # the customer's own filters (vault.preferences)
    ("GET", "/v1/customers/{customer_id}/preferences"): Route(
        scopes(S.CONSENT_READ), 200, get(cust("/preferences"))
    ),
    ("PATCH", "/v1/customers/{customer_id}/preferences"): Route(
        scopes(S.CONSENT_WRITE),
        200,
        send(cust("/preferences"), {"frequency": {PURPOSE: "monthly"}, "channel": "app"}),
    ),
    ("POST", "/v1/contacts"): Route(
        scopes(S.CONTACTS_WRITE), 200, lambda t: {"url": "/v1/contacts", **_contacts_body(t)}
    ),
    # consent-gated data
    ("GET", "/v1/customers/{customer_id}/data"): Route(
        scopes(S.DATA_READ), 200, get(cust("/data"), params={"purpose": PURPOSE})
    ),
    ("GET", "/v1/purposes/{purpose}/audience"): Route(
        scopes(S.DATA_READ),
        200,
        get(f"/v1/purposes/{PURPOSE}/audience", params={"contact_channel": "email"}),
    ),
    # audit
    ("GET", "/v1/audit/events"): Route(scopes(S.AUDIT_READ), 200, get("/v1/audit/events")),
    ("GET", "/v1/audit/verify"): Route(scopes(S.AUDIT_READ), 200, get("/v1/audit/verify")),
    # webhooks
    ("POST", "/v1/webhooks"): Route(
        scopes(S.WEBHOOKS_MANAGE),
        201,
        send("/v1/webhooks", {"url": "http://127.0.0.1:9/h2", "events": ["consent.withdrawn"]}),
        body_scopes=scopes(S.CONSENT_READ),
        body_error="event_type_not_permitted",
    ),
    ("GET", "/v1/webhooks"): Route(scopes(S.WEBHOOKS_MANAGE), 200, get("/v1/webhooks")),
    ("GET", "/v1/webhooks/{webhook_id}"): Route(
        scopes(S.WEBHOOKS_MANAGE), 200, get(hook()), **OWN_HOOK
    ),
    ("POST", "/v1/webhooks/{webhook_id}/disable"): Route(
        scopes(S.WEBHOOKS_MANAGE), 200, send(hook("/disable")), **OWN_HOOK
    ),
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): Route(
        scopes(S.WEBHOOKS_MANAGE), 200, send(hook("/rotate-secret")), **OWN_HOOK
    ),
    ("POST", "/v1/webhooks/{webhook_id}/redeliver"): Route(
        scopes(S.WEBHOOKS_MANAGE), 200, send(hook("/redeliver"), {}), **OWN_HOOK
    ),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Route(
        scopes(S.WEBHOOKS_MANAGE), 200, get(hook("/deliveries")), **OWN_HOOK
    ),
    # self-service: issuing a link is an app's job; the pages need the customer's session
    ("POST", "/v1/customers/{customer_id}/selfservice-link"): Route(
        scopes(S.SELFSERVICE_ISSUE), 202, send(cust("/selfservice-link"))
    ),
    ("GET", "/me/login/{token}"): Route(LINK, 303, get("/me/login/{token}")),
    # one-click unsubscribe (RFC 8058): mail clients post without cookies or tokens
    ("GET", "/unsubscribe/{token}"): Route(
        UNSUB, 200, get(lambda t: f"/unsubscribe/{t.unsubscribe}")
    ),
    ("POST", "/unsubscribe/{token}"): Route(
        UNSUB,
        200,
        lambda t: {
            "url": f"/unsubscribe/{t.unsubscribe}",
            "data": {"List-Unsubscribe": "One-Click"},
        },
    ),
    # without a session /me is the "send me a link" form (nothing of any customer)
    ("GET", "/me"): Route(PUBLIC, 200, get("/me")),
    ("POST", "/me/link"): Route(
        PUBLIC, 200, lambda t: {"url": "/me/link", "data": {"email": factories.unique_email()}}
    ),
    # double opt-in: the link of the confirmation mail shows (GET) and its button confirms (POST)
    ("GET", "/confirm/{token}"): Route(CONFIRM_LINK, 200, get("/confirm/{token}")),
    ("POST", "/confirm/{token}"): Route(
        CONFIRM_LINK, 200, lambda t: {"url": "/confirm/{token}", "data": {"confirm": "yes"}}
    ),
    ("GET", "/me/consents"): Route(SELF, 200, get("/me/consents")),
    ("POST", "/me/consents/{purpose}"): Route(
        SELF, 303, form(f"/me/consents/{PURPOSE}", {"status": "withdrawn"})
    ),
    ("POST", "/me/objection"): Route(SELF, 303, form("/me/objection", {"purpose": "analytics"})),
    ("POST", "/me/preferences/pause"): Route(
        SELF, 303, form("/me/preferences/pause", {"until": PAUSE_UNTIL})
    ),
    ("POST", "/me/preferences/{purpose}/channels"): Route(
        SELF, 303, form(f"/me/preferences/{PURPOSE}/channels", {"contact_channel": "email"})
    ),
    ("POST", "/me/preferences/{purpose}/topics"): Route(
        SELF, 303, form(f"/me/preferences/{PURPOSE}/topics", {"topic": "loyalty"})
    ),
    ("POST", "/me/preferences/{purpose}/frequency"): Route(
        SELF, 303, form(f"/me/preferences/{PURPOSE}/frequency", {"frequency": "monthly"})
    ),
    ("GET", "/me/data"): Route(SELF, 200, get("/me/data")),
    ("GET", "/me/activity"): Route(SELF, 200, get("/me/activity")),
    ("GET", "/me/export"): Route(SELF, 200, get("/me/export")),
    ("POST", "/me/export"): Route(SELF, 200, form("/me/export")),
    ("GET", "/me/erase"): Route(SELF, 200, get("/me/erase")),
    ("POST", "/me/erase"): Route(SELF, 200, form("/me/erase", {"confirm": "yes"})),
    ("POST", "/me/logout"): Route(SELF, 200, form("/me/logout")),
    # the staff console: without a staff session a GET goes to the sign-in form, a POST is 403
    ("GET", "/staff"): Route(PUBLIC, 200, get("/staff")),
    ("GET", "/staff/static"): Route(PUBLIC, 200, get("/staff/static/staff.css")),
    ("POST", "/staff/login"): Route(STAFF_LOGIN, 303, staff_form("/staff/login")),
    ("POST", "/staff/logout"): Route(STAFF, 200, staff_form("/staff/logout")),
    ("GET", "/staff/audit"): Route(STAFF, 200, get("/staff/audit"), role="auditor"),
    ("GET", "/staff/audit/export.csv"): Route(
        STAFF, 200, get("/staff/audit/export.csv"), role="auditor"
    ),
    ("GET", "/staff/audit/export.ndjson"): Route(
        STAFF, 200, get("/staff/audit/export.ndjson"), role="auditor"
    ),
    ("POST", "/staff/audit/verify"): Route(
        STAFF, 200, staff_form("/staff/audit/verify"), role="auditor"
    ),
    # the privacy office (every role and denial: tests/staff/test_authz_matrix.py)
    ("GET", "/staff/office"): Route(STAFF, 200, get("/staff/office"), **PRIVACY_OFFICER),
    ("POST", "/staff/office/lookup"): Route(
        STAFF,
        303,
        staff_form("/staff/office/lookup", lambda t: {"query": str(t.customer)}),
        **PRIVACY_OFFICER,
    ),
    ("GET", "/staff/office/requests"): Route(
        STAFF, 200, get("/staff/office/requests"), **PRIVACY_OFFICER
    ),
    ("GET", "/staff/office/requests/{request_id}"): Route(
        STAFF, 200, get(office_request()), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/requests/{request_id}/extend"): Route(
        STAFF,
        303,
        staff_form(office_request("/extend"), {"months": "1", "reason": "complexity"}),
        **PRIVACY_OFFICER,
    ),
    ("POST", "/staff/office/requests/{request_id}/close"): Route(
        STAFF,
        303,
        staff_form(office_request("/close"), {"status": "completed"}),
        **PRIVACY_OFFICER,
    ),
    ("GET", "/staff/office/customers/{customer_id}"): Route(
        STAFF, 200, get(office()), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/customers/{customer_id}/requests"): Route(
        STAFF, 303, staff_form(office("/requests"), {"kind": "objection"}), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/customers/{customer_id}/restriction"): Route(
        STAFF,
        303,
        staff_form(office("/restriction"), {"reason": "accuracy_contested"}),
        **PRIVACY_OFFICER,
    ),
    ("POST", "/staff/office/customers/{customer_id}/restriction/lift"): Route(
        STAFF, 303, staff_form(office("/restriction/lift")), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/customers/{customer_id}/objection"): Route(
        STAFF,
        303,
        staff_form(office("/objection"), {"scope": "direct_marketing"}),
        **PRIVACY_OFFICER,
    ),
    ("POST", "/staff/office/customers/{customer_id}/objection/withdraw"): Route(
        STAFF,
        303,
        staff_form(office("/objection/withdraw"), {"scope": "direct_marketing"}),
        **PRIVACY_OFFICER,
    ),
    ("POST", "/staff/office/customers/{customer_id}/legal-hold"): Route(
        STAFF, 303, staff_form(office("/legal-hold"), {"reason": "litigation"}), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/customers/{customer_id}/legal-hold/clear"): Route(
        STAFF,
        303,
        staff_form(office("/legal-hold/clear"), {"reason": "set_in_error"}),
        **PRIVACY_OFFICER,
    ),
    ("GET", "/staff/office/customers/{customer_id}/erase"): Route(
        STAFF, 200, get(office("/erase")), **PRIVACY_OFFICER
    ),
    ("POST", "/staff/office/customers/{customer_id}/erase"): Route(
        STAFF, 303, staff_form(office("/erase"), {"confirm": "yes"}), **PRIVACY_OFFICER
    ),
    ("GET", "/staff/office/customers/{customer_id}/dossier"): Route(
        STAFF, 200, get(office("/dossier")), **PRIVACY_OFFICER
    ),
    ("GET", "/staff/office/rates"): Route(
        STAFF, 200, get("/staff/office/rates"), **PRIVACY_OFFICER
    ),
    ("GET", "/staff/office/health"): Route(
        STAFF, 200, get("/staff/office/health"), **PRIVACY_OFFICER
    ),
    # the counter: every role of the desk in tests/staff/test_authz_matrix.py
    ("GET", "/staff/customers"): Route(STAFF, 200, get("/staff/customers"), role="store"),
    ("POST", "/staff/customers/find"): Route(
        STAFF,
        404,
        staff_form("/staff/customers/find", {"by": "email", "value": "no@example.de"}),
        role="store",
    ),
    ("GET", "/staff/customers/{customer_id}"): Route(
        STAFF, 200, get(lambda t: f"/staff/customers/{t.customer}"), role="store"
    ),
    ("GET", "/staff/customers/{customer_id}/consents/{purpose}"): Route(
        STAFF,
        200,
        get(lambda t: f"/staff/customers/{t.customer}/consents/newsletter"),
        role="store",
    ),
    ("POST", "/staff/customers/{customer_id}/consents/{purpose}"): Route(
        STAFF,
        200,
        lambda t: {
            "url": f"/staff/customers/{t.customer}/consents/newsletter",
            "data": {"status": "withdrawn", "script": "", "language": "de"},
        },
        role="store",
    ),
    ("POST", "/staff/customers/{customer_id}/preferences/{purpose}"): Route(
        STAFF,
        409,
        lambda t: {
            "url": f"/staff/customers/{t.customer}/preferences/newsletter",
            "data": {"contact_channel": "email", "frequency": "monthly"},
        },
        role="store",
    ),
    ("POST", "/staff/customers/{customer_id}/pause"): Route(
        STAFF,
        303,
        lambda t: {"url": f"/staff/customers/{t.customer}/pause", "data": {"action": "end"}},
        role="store",
    ),
    ("POST", "/staff/customers/{customer_id}/link"): Route(
        STAFF,
        200,
        lambda t: {"url": f"/staff/customers/{t.customer}/link", "data": {}},
        role="call_center",
    ),
    ("POST", "/staff/customers/{customer_id}/requests"): Route(
        STAFF,
        200,
        lambda t: {"url": f"/staff/customers/{t.customer}/requests", "data": {"kind": "access"}},
        role="store",
    ),
    # data-subject rights
    ("GET", "/v1/customers/{customer_id}/export"): Route(DSR, 200, get(cust("/export"))),
    ("DELETE", "/v1/customers/{customer_id}"): Route(DSR, 204, send(cust())),
    ("GET", "/v1/customers/{customer_id}/erasure-certificate"): Route(
        DSR, 200, get(lambda t: f"/v1/customers/{t.erased}/erasure-certificate")
    ),
    ("POST", "/v1/customers/{customer_id}/legal-hold"): Route(
        DSR,
        200,
        send(cust("/legal-hold"), {"reason": "tax_retention", "note": "Steuerprüfung 2026"}),
    ),
    ("DELETE", "/v1/customers/{customer_id}/legal-hold"): Route(
        DSR, 200, send(cust("/legal-hold"), {"reason": "retention_period_ended"})
    ),
    ("POST", "/v1/customers/{customer_id}/restriction"): Route(
        DSR, 200, send(cust("/restriction"), {"reason": "accuracy_contested"})
    ),
    ("DELETE", "/v1/customers/{customer_id}/restriction"): Route(
        DSR, 200, send(cust("/restriction"))
    ),
    ("POST", "/v1/customers/{customer_id}/objection"): Route(
        DSR, 200, send(cust("/objection"), {"scope": "direct_marketing"})
    ),
    ("DELETE", "/v1/customers/{customer_id}/objection"): Route(
        DSR, 200, send(cust("/objection"), {"scope": "direct_marketing"})
    ),
    ("GET", "/v1/dsr/requests"): Route(DSR, 200, get("/v1/dsr/requests")),
    ("POST", "/v1/dsr/requests"): Route(
        DSR,
        201,
        send(
            "/v1/dsr/requests", lambda t: {"customer_id": str(t.customer), "kind": "rectification"}
        ),
    ),
    ("GET", "/v1/dsr/requests/{request_uuid}"): Route(DSR, 200, get(dsr())),
    ("POST", "/v1/dsr/requests/{request_uuid}/extension"): Route(
        DSR,
        200,
        send(dsr("/extension"), {"months": 2, "reason": "complexity", "note": "Umfangreich"}),
    ),
    ("POST", "/v1/dsr/requests/{request_uuid}/close"): Route(
        DSR, 200, send(dsr("/close"), {"status": "completed"})
    ),
    ("GET", "/v1/records-of-processing"): Route(
        scopes(S.DSR_EXECUTE, S.AUDIT_READ), 200, get("/v1/records-of-processing")
    ),
}


# --- what each caller must get ------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    error: str | None = None  # the machine-readable code of a JSON error body
    challenge: str | None = None  # what the WWW-Authenticate header must contain


def caller_scopes(caller: str) -> frozenset[str]:
    if caller.startswith("scope:"):
        return frozenset({caller.removeprefix("scope:")})
    return {
        "expired": frozenset(),  # never reaches a scope check
        "other_purpose": scopes(S.DATA_READ),
        "auditor": scopes(*AUDITOR_SCOPES),
        "webhook_manager": scopes(*WEBHOOK_MANAGER_SCOPES),
    }.get(caller, frozenset())


def expected(route: Route, caller: str, method: str = "GET") -> Expect:
    if route.who in (PUBLIC, LINK, UNSUB, CONFIRM_LINK):
        return Expect(route.ok)
    if route.who == STAFF:  # no caller here holds a staff session
        return Expect(303) if method == "GET" else Expect(403)
    if route.who == STAFF_LOGIN:  # nor the sign-in form's cookie, nor staff credentials
        return Expect(403)
    if route.who == SELF:
        # Only a session cookie opens /me, and the pages act for the session's own customer
        # (checked in the test: nothing of customer A shows). A form posted with customer B's
        # session and customer A's CSRF token is refused.
        if caller != "selfservice_other":
            return Expect(401)
        return Expect(403) if method == "POST" else Expect(route.ok)
    if caller == "nobody" or caller == "selfservice_other":
        return Expect(401, "not_authenticated", 'Bearer realm="consent-vault"')
    if caller == "expired":
        return Expect(401, "not_authenticated", 'error="invalid_token"')
    held = caller_scopes(caller)
    if not held & route.who:
        return Expect(403, "insufficient_scope", 'error="insufficient_scope"')
    if caller == "other_purpose":  # holds data:read, but not for PURPOSE
        return Expect(403, "purpose_not_permitted_for_client")
    if route.body_scopes and not held & route.body_scopes:
        return Expect(403, route.body_error)
    if route.owner is not None and caller != route.owner:
        return Expect(404, route.not_found)
    return Expect(route.ok)


# --- the tests ------------------------------------------------------------------------------


def _served_routes(app) -> set[tuple[str, str]]:
    served = set()
    for rc in iter_route_contexts(app.routes):
        methods = getattr(rc, "methods", None) or {"GET"}
        for m in methods - {"HEAD"}:
            served.add((m, rc.path))
    return served


def test_every_route_is_in_the_table(world: World):
    served = _served_routes(world.client.app)
    assert len(served) > 40  # the route walk found the app's routes
    missing = sorted(served - set(ROUTES))
    assert not missing, f"routes missing from the authorization table: {missing}"
    stale = sorted(set(ROUTES) - served)
    assert not stale, f"table rows for routes the app no longer serves: {stale}"


def test_table_agrees_with_the_openapi_security(world: World):
    """The table's scopes are the ones each operation declares in the OpenAPI document."""
    spec = world.client.get("/openapi.json").json()
    documented = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            route = ROUTES[(method.upper(), path)]
            declared = {s for req in op.get("security", []) for v in req.values() for s in v}
            if route.who in (PUBLIC, UNSUB):
                assert "security" not in op, (method, path)
            elif declared:
                assert declared == route.who, (method, path, declared)
            else:  # authenticated, scopes checked in the handler (records of processing)
                assert op.get("security") == [{"client_credentials": []}], (method, path)
                assert route.who == scopes(S.DSR_EXECUTE, S.AUDIT_READ)
            documented.add((method.upper(), path))
    scoped = {key for key, route in ROUTES.items() if isinstance(route.who, frozenset)}
    assert scoped <= documented, (
        f"scoped routes missing from the OpenAPI document: {scoped - documented}"
    )


def _fingerprint(world: World) -> dict[str, list[str]]:
    """Everything a denied call must leave as it was. The audit log is left out: it records
    denials on purpose."""
    queries = {
        "client": "SELECT * FROM client",
        "customer": "SELECT id, status, dek_wrapped, objections, legal_hold, legal_hold_reason, "
        "legal_hold_note, restriction_reason, restriction_note FROM customer",
        "customer_value": "SELECT * FROM customer_value",
        "blind_index": "SELECT * FROM blind_index",
        "consent_event": "SELECT id FROM consent_event",
        "consent_state": "SELECT * FROM consent_state",
        "consent_confirmation": "SELECT * FROM consent_confirmation",
        "outbox_event": "SELECT id FROM outbox_event",
        "webhook": "SELECT id, status, secret_ciphertext FROM webhook",
        "webhook_delivery": "SELECT id, status FROM webhook_delivery",
        "dsr_request": "SELECT id, status, extension_months, extension_reason, extension_note, "
        "close_reason, close_note FROM dsr_request",
        "selfservice_link": "SELECT * FROM selfservice_link",
        "selfservice_session": "SELECT id_hash, customer_id, expires_at FROM selfservice_session",
        "staff_account": "SELECT id, disabled_at, failed_logins, locked_until FROM staff_account",
        "staff_session": "SELECT id_hash, staff_id FROM staff_session",
    }
    with world.runtime.engine.connect() as conn:
        return {
            name: sorted(map(repr, conn.execute(text(sql)).all())) for name, sql in queries.items()
        }


def _call(world: World, method: str, route: Route, caller: str, target: Target):
    kwargs = route.request(target)
    url = kwargs.pop("url")
    if route.who == LINK:
        url = _link(world, target.customer)
    if route.who == CONFIRM_LINK:
        url = f"/confirm/{_confirmation(world, target.customer)}"
    if url == "/v1/oauth/token":
        kwargs["data"] = {"grant_type": "client_credentials", **world.credentials}
    headers = dict(kwargs.pop("headers", {}))
    cookies = {}
    if caller == "staff_session":
        return _call_as_staff(world, method, route, url, kwargs)
    if caller == "selfservice_other":
        cookies[SESSION_COOKIE] = target.other_cookie
    elif caller == "own_session":
        cookies[SESSION_COOKIE] = target.own_cookie
    elif caller != "nobody":
        headers["Authorization"] = f"Bearer {world.tokens[caller]}"
    world.client.cookies.clear()
    for name, value in cookies.items():
        world.client.cookies.set(name, value)
    return world.client.request(method, url, headers=headers, follow_redirects=False, **kwargs)


def _call_as_staff(world: World, method: str, route: Route, url: str, kwargs: dict[str, Any]):
    """The permitted call of a staff route: a fresh account of the route's role, signed in
    through the form (STAFF_LOGIN) or holding a session made by the service (STAFF)."""
    staff = staff_helpers.make_staff(world.runtime, route.role or "auditor")
    with TestClient(world.client.app, raise_server_exceptions=False) as browser:
        if route.who == STAFF_LOGIN:
            return staff_helpers.sign_in(browser, staff)
        cookie = staff_helpers.session_cookie(world.runtime, staff)
        browser.cookies.set(STAFF_SESSION_COOKIE, cookie)
        if method != "GET":
            kwargs["data"] = {**kwargs.get("data", {}), "csrf_token": staff_csrf(cookie)}
        return browser.request(method, url, follow_redirects=False, **kwargs)


def _check(response, want: Expect, where: str) -> None:
    assert response.status_code == want.status, (
        f"{where}: {response.status_code} {response.text[:300]}"
    )
    if want.error:
        assert response.headers["content-type"] == "application/json", where
        assert response.json()["error"] == want.error, where
    if want.challenge:
        assert want.challenge in response.headers.get("www-authenticate", ""), where
    if want.status == 303 and response.request.url.path.startswith("/staff"):
        if response.request.method == "GET":  # to the sign-in form
            assert response.headers["location"] == "/staff", where
        else:  # a form done: back to a staff page
            assert response.headers["location"].startswith("/staff"), where
    for header in SECURITY_HEADERS:
        assert header in response.headers, f"{where}: no {header}"


@pytest.mark.parametrize("method,path", sorted(ROUTES), ids=lambda v: str(v))
def test_route_answers_each_caller_as_the_table_says(world: World, target: Target, method, path):
    route = ROUTES[(method, path)]
    before = _fingerprint(world)
    permitted = []
    for caller in CALLERS:
        want = expected(route, caller, method)
        if want.status == route.ok:
            permitted.append(caller)
            continue
        r = _call(world, method, route, caller, target)
        _check(r, want, f"{method} {path} as {caller}")
        assert target.receipt not in r.text and "Bearer" not in r.text  # no token echoed
    assert _fingerprint(world) == before, f"a denied call to {method} {path} changed state"

    # The permitted callers last, since their calls may change state.
    if route.who == SELF:
        if method == "GET":  # another customer's session sees only its own customer
            r = _call(world, method, route, "selfservice_other", target)
            _check(r, Expect(route.ok), f"{method} {path} as customer B")
            assert "ZielkundinAnna" not in r.text and str(target.customer) not in r.text
        permitted = ["own_session"]
    if route.who in (STAFF, STAFF_LOGIN):
        permitted = ["staff_session"]
    assert permitted, "no caller may use this route"
    for caller in permitted:
        r = _call(world, method, route, caller, target)
        _check(r, Expect(route.ok), f"{method} {path} as {caller}")


def doc_rows() -> list[str]:
    """The table as docs/security.md shows it (one row per route)."""
    names = {PUBLIC: "anyone", SELF: "the customer's own self-service session"}
    names[LINK] = "the magic link itself"
    names[UNSUB] = "the unsubscribe link itself (no cookie, no token)"
    names[CONFIRM_LINK] = "the confirmation link itself"
    names[STAFF_LOGIN] = "name, password and TOTP code on the staff sign-in form"
    rows = []
    for (method, path), route in sorted(ROUTES.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if route.who == STAFF:
            who = (
                f"a staff console session, role `{route.role}`"
                if route.role
                else ("a staff console session (any role)")
            )
        elif isinstance(route.who, str):
            who = names[route.who]
        else:
            who = " or ".join(sorted(f"`{s}`" for s in route.who))
            if route.body_scopes:
                also = " or ".join(sorted(f"`{s}`" for s in route.body_scopes))
                who += f", plus {also} to read the requested events"
        rows.append(f"| `{method} {path}` | {who} | {route.ok} |")
    return rows


def test_security_doc_shows_this_table():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    table = doc.split("| route | who may call it | permitted answer |\n|---|---|---|\n", 1)[1]
    shown = table.split("\n\n", 1)[0].splitlines()
    assert shown == doc_rows(), "docs/security.md's route table differs from ROUTES"
