"""Authorization matrix of the staff console: every staff route x every kind of caller.

``STAFF_ROUTES`` names each route behind the sign-in once: the roles that may use it, the
permitted answer and one valid request. Adding a route is one line::

    ("GET", "/staff/customers"): StaffRoute(STORE_DESK, 200, get("/staff/customers")),

``test_every_staff_route_is_in_the_table`` fails for a /staff route the table lacks. For each
route every caller below gets its answer, and no denied call changes anything:

- nobody, an idle-expired session, a session past its absolute end, the session of a disabled
  account: a GET is sent to sign in (303 to /staff), anything else 403;
- each role that may not use the route: 403;
- for every method but GET: a permitted session posting without a CSRF token, or with the
  CSRF token of another session: 403;
- then each permitted role, with its session's CSRF token: the permitted answer.

The request builders get a :class:`Target` (a customer to act on, the runtime); a route whose
permitted call needs more state builds it in its lambda.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from tests import factories
from tests.staff.helpers import Staff, make_staff, session_cookie
from vault.app import create_app
from vault.config import Settings
from vault.db import reader, utcnow
from vault.dsr import requests as dsr_requests
from vault.provenance import Caller
from vault.runtime import Runtime
from vault.staff import accounts, sessions
from vault.staff.accounts import ROLES, Role
from vault.staff.models import StaffSession
from vault.staff.pages import SESSION_COOKIE

# --- the table ----------------------------------------------------------------------------------

ANY = frozenset(ROLES)
AUDITOR = frozenset({Role.AUDITOR.value})
PRIVACY = frozenset({Role.PRIVACY_OFFICER.value})
STORE_DESK = frozenset({Role.STORE.value, Role.CALL_CENTER.value})

# /staff routes open to anyone (the sign-in door and the stylesheet): not in the table
PUBLIC = {("GET", "/staff"), ("POST", "/staff/login"), ("GET", "/staff/static")}


@dataclass
class Target:
    runtime: Runtime
    client: TestClient
    customer: uuid.UUID  # a customer with an e-mail address, consents and a request to act on


Request = Callable[[Target], dict[str, Any]]


@dataclass(frozen=True)
class StaffRoute:
    roles: frozenset[str]  # the roles that may use it
    ok: int  # the permitted answer
    request: Request  # kwargs for TestClient.request (url, params, data), without the CSRF token


def get(url: str | Callable[[Target], str], **kw: Any) -> Request:
    return lambda t: {"url": url(t) if callable(url) else url, **kw}


def post(
    url: str | Callable[[Target], str],
    data: dict[str, str] | Callable[[Target], dict[str, str]] | None = None,
) -> Request:
    return lambda t: {
        "url": url(t) if callable(url) else url,
        "data": dict((data(t) if callable(data) else data) or {}),
    }


STAFF_ROUTES: dict[tuple[str, str], StaffRoute] = {
    ("POST", "/staff/logout"): StaffRoute(ANY, 200, post("/staff/logout")),
    # auditors
    ("GET", "/staff/audit"): StaffRoute(AUDITOR, 200, get("/staff/audit?action=staff.*")),
    ("GET", "/staff/audit/export.csv"): StaffRoute(AUDITOR, 200, get("/staff/audit/export.csv")),
    ("GET", "/staff/audit/export.ndjson"): StaffRoute(
        AUDITOR, 200, get("/staff/audit/export.ndjson")
    ),
    ("POST", "/staff/audit/verify"): StaffRoute(AUDITOR, 200, post("/staff/audit/verify")),
    # the privacy office
    ("GET", "/staff/office"): StaffRoute(PRIVACY, 200, get("/staff/office")),
    ("POST", "/staff/office/lookup"): StaffRoute(
        PRIVACY, 303, post("/staff/office/lookup", lambda t: {"query": str(t.customer)})
    ),
    ("GET", "/staff/office/requests"): StaffRoute(PRIVACY, 200, get("/staff/office/requests")),
    ("GET", "/staff/office/requests/{request_id}"): StaffRoute(
        PRIVACY, 200, get(lambda t: f"/staff/office/requests/{_office_request(t)}")
    ),
    ("POST", "/staff/office/requests/{request_id}/extend"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/requests/{_office_request(t)}/extend",
            {"months": "1", "reason": "complexity"},
        ),
    ),
    ("POST", "/staff/office/requests/{request_id}/close"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/requests/{_office_request(t)}/close",
            {"status": "completed", "reason": "fulfilled"},
        ),
    ),
    ("GET", "/staff/office/customers/{customer_id}"): StaffRoute(
        PRIVACY, 200, get(lambda t: f"/staff/office/customers/{t.customer}")
    ),
    ("POST", "/staff/office/customers/{customer_id}/requests"): StaffRoute(
        PRIVACY,
        303,
        post(lambda t: f"/staff/office/customers/{t.customer}/requests", {"kind": "access"}),
    ),
    ("POST", "/staff/office/customers/{customer_id}/restriction"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/customers/{t.customer}/restriction",
            {"reason": "accuracy_contested"},
        ),
    ),
    ("POST", "/staff/office/customers/{customer_id}/restriction/lift"): StaffRoute(
        PRIVACY, 303, post(lambda t: f"/staff/office/customers/{t.customer}/restriction/lift")
    ),
    ("POST", "/staff/office/customers/{customer_id}/objection"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/customers/{t.customer}/objection",
            {"scope": "direct_marketing"},
        ),
    ),
    ("POST", "/staff/office/customers/{customer_id}/objection/withdraw"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/customers/{t.customer}/objection/withdraw",
            {"scope": "direct_marketing"},
        ),
    ),
    ("POST", "/staff/office/customers/{customer_id}/legal-hold"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/customers/{t.customer}/legal-hold",
            {"reason": "tax_retention"},
        ),
    ),
    ("POST", "/staff/office/customers/{customer_id}/legal-hold/clear"): StaffRoute(
        PRIVACY,
        303,
        post(
            lambda t: f"/staff/office/customers/{t.customer}/legal-hold/clear",
            {"reason": "set_in_error"},
        ),
    ),
    ("GET", "/staff/office/customers/{customer_id}/erase"): StaffRoute(
        PRIVACY, 200, get(lambda t: f"/staff/office/customers/{t.customer}/erase")
    ),
    ("POST", "/staff/office/customers/{customer_id}/erase"): StaffRoute(
        PRIVACY,
        303,
        post(lambda t: f"/staff/office/customers/{t.customer}/erase", {"confirm": "yes"}),
    ),
    ("GET", "/staff/office/customers/{customer_id}/dossier"): StaffRoute(
        PRIVACY, 200, get(lambda t: f"/staff/office/customers/{t.customer}/dossier")
    ),
    ("GET", "/staff/office/rates"): StaffRoute(PRIVACY, 200, get("/staff/office/rates")),
    ("GET", "/staff/office/health"): StaffRoute(PRIVACY, 200, get("/staff/office/health")),
    # store and call centre (vault/staff/counter_routes.py)
    ("GET", "/staff/customers"): StaffRoute(STORE_DESK, 200, get("/staff/customers")),
    ("POST", "/staff/customers/find"): StaffRoute(
        STORE_DESK, 404, post("/staff/customers/find", {"by": "email", "value": "no@example.de"})
    ),
    ("GET", "/staff/customers/{customer_id}"): StaffRoute(
        STORE_DESK, 200, get(lambda t: f"/staff/customers/{t.customer}")
    ),
    ("GET", "/staff/customers/{customer_id}/consents/{purpose}"): StaffRoute(
        STORE_DESK, 200, get(lambda t: f"/staff/customers/{t.customer}/consents/newsletter")
    ),
    ("POST", "/staff/customers/{customer_id}/consents/{purpose}"): StaffRoute(
        STORE_DESK,
        200,
        post(
            lambda t: f"/staff/customers/{t.customer}/consents/newsletter",
            {"status": "withdrawn", "script": "", "language": "de"},
        ),
    ),
    # the customer has no grant: the preference form is refused (409), the pause recorded
    ("POST", "/staff/customers/{customer_id}/preferences/{purpose}"): StaffRoute(
        STORE_DESK,
        409,
        post(
            lambda t: f"/staff/customers/{t.customer}/preferences/newsletter",
            {"contact_channel": "email", "frequency": "monthly"},
        ),
    ),
    ("POST", "/staff/customers/{customer_id}/pause"): StaffRoute(
        STORE_DESK,
        303,
        post(lambda t: f"/staff/customers/{t.customer}/pause", {"action": "end"}),
    ),
    ("POST", "/staff/customers/{customer_id}/link"): StaffRoute(
        STORE_DESK, 200, post(lambda t: f"/staff/customers/{t.customer}/link")
    ),
    ("POST", "/staff/customers/{customer_id}/requests"): StaffRoute(
        STORE_DESK,
        200,
        post(lambda t: f"/staff/customers/{t.customer}/requests", {"kind": "access"}),
    ),
}


_OFFICE_REQUESTS: dict[uuid.UUID, uuid.UUID] = {}


def _office_request(t: Target) -> uuid.UUID:
    """An open request of the target's customer, made once per target (so the denied calls,
    which build the same request, find it unchanged)."""
    if t.customer not in _OFFICE_REQUESTS:
        with Session(reader(t.runtime.engine), expire_on_commit=False) as s:
            row = dsr_requests.create_request(
                session=s, customer_id=t.customer, kind="access", by=Caller("client:test")
            )
            s.commit()
        _OFFICE_REQUESTS[t.customer] = row.id
    return _OFFICE_REQUESTS[t.customer]


# --- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    runtime: Runtime
    client: TestClient
    staff: dict[str, Staff]  # role -> an active account
    disabled: Staff  # an account disabled after its session started
    disabled_cookie: str


@pytest.fixture(scope="module")
def world(template, tmp_path_factory) -> Iterator[World]:
    url, name = template.fresh()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("staff-authz") / "vault-data",
        database_url=url,
        public_url="http://testserver",
        audit_seal_interval=0,
        _env_file=None,
    )
    runtime = Runtime.build(settings)
    staff = {role: make_staff(runtime, role) for role in ROLES}
    disabled = make_staff(runtime, Role.PRIVACY_OFFICER.value)
    disabled_cookie = session_cookie(runtime, disabled)
    with Session(reader(runtime.engine)) as s:
        accounts.disable_account(session=s, name=disabled.name)
        s.commit()
    app = create_app(runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(runtime, client, staff, disabled, disabled_cookie)
    runtime.engine.dispose()
    template.drop(name)


@pytest.fixture
def target(world: World) -> Target:
    rt = world.runtime
    with Session(reader(rt.engine), expire_on_commit=False) as s:
        headers = factories.auth_headers(s, rt, "customers:write")
    r = world.client.post(
        "/v1/customers",
        headers=headers,
        json={"attributes": {"email": factories.unique_email("staff"), "first_name": "Greta"}},
    )
    assert r.status_code == 201, r.text
    t = Target(rt, world.client, uuid.UUID(r.json()["id"]))
    _office_request(t)  # the open request the privacy office's routes act on
    return t


def _aged(world: World, staff: Staff, *, idle: bool) -> str:
    """A session of ``staff`` that has ended: idle for too long, or past its absolute end."""
    cookie = session_cookie(world.runtime, staff)
    settings = world.runtime.settings
    with Session(reader(world.runtime.engine)) as s:
        row = s.get(StaffSession, sessions._hash(cookie))
        if idle:
            row.last_seen_at = utcnow() - timedelta(seconds=settings.staff_idle_seconds + 5)
        else:
            row.expires_at = utcnow() - timedelta(seconds=5)
        s.add(row)
        s.commit()
    return cookie


def _fingerprint(world: World) -> dict[str, list[str]]:
    """What a denied call must leave as it was (the audit log records denials on purpose)."""
    queries = {
        "customer": "SELECT id, status, objections, legal_hold, restriction_reason FROM customer",
        "customer_value": "SELECT * FROM customer_value",
        "consent_event": "SELECT id FROM consent_event",
        "consent_state": "SELECT * FROM consent_state",
        "dsr_request": "SELECT id, status, extension_months FROM dsr_request",
        "mail_outbox": "SELECT id FROM mail_outbox",
        "selfservice_link": "SELECT token_hash FROM selfservice_link",
        "staff_account": "SELECT id, disabled_at, failed_logins, locked_until FROM staff_account",
        "staff_session": "SELECT id_hash, staff_id FROM staff_session",
        "audit_checkpoint": "SELECT seq FROM audit_checkpoint",
    }
    with world.runtime.engine.connect() as conn:
        return {n: sorted(map(repr, conn.execute(text(q)).all())) for n, q in queries.items()}


def _call(
    world: World,
    method: str,
    route: StaffRoute,
    target: Target,
    cookie: str | None,
    csrf: str | None,
):
    kwargs = route.request(target)
    url = kwargs.pop("url")
    if method != "GET":
        data = dict(kwargs.pop("data", {}))
        if csrf is not None:
            data["csrf_token"] = csrf
        kwargs["data"] = data
    world.client.cookies.clear()
    if cookie:
        world.client.cookies.set(SESSION_COOKIE, cookie)
    r = world.client.request(method, url, follow_redirects=False, **kwargs)
    world.client.cookies.clear()
    return r


def _refused(r, method: str, where: str) -> None:
    if method == "GET":
        assert r.status_code == 303, f"{where}: {r.status_code} {r.text[:200]}"
        assert r.headers["location"] == "/staff", where
    else:
        assert r.status_code == 403, f"{where}: {r.status_code} {r.text[:200]}"
        assert "text/html" in r.headers["content-type"], where
    assert "x-frame-options" in r.headers and "content-security-policy" in r.headers, where


# --- the tests ----------------------------------------------------------------------------------


def test_every_staff_route_is_in_the_table(world: World):
    served = set()
    for rc in iter_route_contexts(world.client.app.routes):
        if not rc.path.startswith("/staff"):
            continue
        for m in (getattr(rc, "methods", None) or {"GET"}) - {"HEAD"}:
            served.add((m, rc.path))
    assert ("POST", "/staff/audit/verify") in served
    missing = sorted(served - set(STAFF_ROUTES) - PUBLIC)
    assert not missing, f"staff routes missing from STAFF_ROUTES: {missing}"
    stale = sorted(set(STAFF_ROUTES) - served)
    assert not stale, f"STAFF_ROUTES rows for routes the app no longer serves: {stale}"


@pytest.mark.parametrize("method,path", sorted(STAFF_ROUTES), ids=lambda v: str(v))
def test_staff_route_answers_each_caller_as_the_table_says(
    world: World, target: Target, method: str, path: str
):
    route = STAFF_ROUTES[(method, path)]
    assert route.roles <= ANY and route.roles, path
    someone = world.staff[sorted(route.roles)[0]]
    before = _fingerprint(world)

    # without a live session
    ended = {
        "nobody": None,
        "idle-expired session": _aged(world, someone, idle=True),
        "session past its end": _aged(world, someone, idle=False),
        "disabled account's session": world.disabled_cookie,
    }
    for who, cookie in ended.items():
        csrf = sessions.csrf_token(cookie) if cookie else None
        r = _call(world, method, route, target, cookie, csrf)
        _refused(r, method, f"{method} {path} as {who}")

    # another role's session, with its own valid CSRF token
    for role in sorted(set(ROLES) - route.roles):
        cookie = session_cookie(world.runtime, world.staff[role])
        r = _call(world, method, route, target, cookie, sessions.csrf_token(cookie))
        assert r.status_code == 403, f"{method} {path} as {role}: {r.status_code}"
        assert "text/html" in r.headers["content-type"]

    # a permitted role's session without the CSRF token, or with another session's
    if method != "GET":
        cookie = session_cookie(world.runtime, someone)
        other = session_cookie(world.runtime, someone)
        for csrf in (None, "", sessions.csrf_token(other)):
            r = _call(world, method, route, target, cookie, csrf)
            assert r.status_code == 403, f"{method} {path} CSRF {csrf!r}: {r.status_code}"

    after = _fingerprint(world)
    # sessions made above for the callers themselves are not the denied calls' doing
    before.pop("staff_session"), after.pop("staff_session")
    assert after == before, f"a denied call to {method} {path} changed state"

    # the permitted roles last, each with a fresh session and its CSRF token
    for role in sorted(route.roles):
        cookie = session_cookie(world.runtime, world.staff[role])
        r = _call(world, method, route, target, cookie, sessions.csrf_token(cookie))
        assert r.status_code == route.ok, (
            f"{method} {path} as {role}: {r.status_code} {r.text[:300]}"
        )


def test_a_disabled_accounts_session_stops_on_the_next_request(world: World):
    staff = make_staff(world.runtime, Role.AUDITOR.value)
    cookie = session_cookie(world.runtime, staff)
    world.client.cookies.set(SESSION_COOKIE, cookie)
    assert world.client.get("/staff/audit", follow_redirects=False).status_code == 200
    with Session(reader(world.runtime.engine)) as s:
        accounts.disable_account(session=s, name=staff.name)
        s.commit()
    r = world.client.get("/staff/audit", follow_redirects=False)
    world.client.cookies.clear()
    assert r.status_code == 303 and r.headers["location"] == "/staff"


def test_the_table_is_documented():
    """docs/staff.md lists every route of the table with its roles."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "staff.md").read_text()
    for (method, path), route in STAFF_ROUTES.items():
        roles = ", ".join(f"`{r}`" for r in sorted(route.roles)) if route.roles != ANY else "any"
        assert f"| `{method} {path}` | {roles} |" in doc, (method, path)
