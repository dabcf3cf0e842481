"""The self-service page through the HTTP app (TestClient): links, sessions, CSRF, GPC,
language, consents, objections, export, erasure, and that one customer never reaches another."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests import factories
from tests.selfservice.helpers import csrf, issue_link, mailed_link, sign_in
from vault.app import create_app
from vault.audit.models import AuditEvent
from vault.config import Settings
from vault.consent.models import ConsentEvent
from vault.customers.models import Customer
from vault.db import utcnow
from vault.dsr.models import DataSubjectRequest
from vault.runtime import Runtime
from vault.selfservice.models import SelfserviceLink, SelfserviceSession


@pytest.fixture
def customer(session, runtime):
    c = factories.create_customer(
        session, runtime, first_name="Erika", birth_date="1984-05-17", postal_code="10115"
    )
    session.rollback()
    return c


def _events(session, customer_id, purpose=None):
    stmt = select(ConsentEvent).where(ConsentEvent.customer_id == customer_id)
    if purpose:
        stmt = stmt.where(ConsentEvent.purpose == purpose)
    rows = list(session.execute(stmt.order_by(ConsentEvent.seq)).scalars())
    session.rollback()
    return rows


def _customer(session, customer_id):
    row = session.get(Customer, customer_id, populate_existing=True)
    session.rollback()
    return row


# --- the link API -------------------------------------------------------------------------


def test_link_route_needs_token_and_scope(client, session, runtime, customer):
    path = f"/v1/customers/{customer.id}/selfservice-link"
    assert client.post(path).status_code == 401
    wrong = factories.auth_headers(session, runtime, "consent:write")
    r = client.post(path, headers=wrong)
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"


def test_link_is_issued_for_known_customers_only_and_stored_as_hash(
    client, session, runtime, customer
):
    headers = factories.auth_headers(session, runtime, "selfservice:issue")
    r = client.post(f"/v1/customers/{uuid4()}/selfservice-link", headers=headers)
    assert r.status_code == 404
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"mail_id", "expires_at"}
    assert r.headers["cache-control"] == "no-store"
    path = mailed_link(runtime, body["mail_id"])
    token = path.rsplit("/", 1)[1]
    # the app never sees the link: not in the body, not in a header
    assert token not in r.text
    assert not [v for v in r.headers.values() if token in v or "/me/login/" in v]
    rows = list(session.execute(select(SelfserviceLink)).scalars())
    session.rollback()
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(rows[0])
    lifetime = rows[0].expires_at - rows[0].created_at
    assert timedelta(minutes=14) < lifetime <= timedelta(minutes=15)
    issued = session.execute(
        select(AuditEvent.action).where(AuditEvent.customer_id == customer.id)
    ).scalars()
    assert "selfservice.link_issued" in list(issued)
    session.rollback()


def test_link_for_erased_customer_is_410(client, session, runtime, customer):
    session.execute(update(Customer).where(Customer.id == customer.id).values(status="erased"))
    session.commit()
    headers = factories.auth_headers(session, runtime, "selfservice:issue")
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    assert r.status_code == 410


# --- opening the link -----------------------------------------------------------------------


def test_link_opens_a_session_once_and_redirects_to_me(client, session, runtime, customer):
    path = issue_link(client, session, runtime, customer.id)
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/me"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("vault_session=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/me" in cookie
    assert "Secure" not in cookie  # public_url is http here
    page = client.get("/me")
    assert page.status_code == 200
    assert "Erika" in page.text
    # the second use of the same link is refused with a friendly page, not a 500
    again = TestClient(client.app).get(path, follow_redirects=False)
    assert again.status_code == 410
    assert "text/html" in again.headers["content-type"]
    assert "bereits verwendet" in again.text
    assert "set-cookie" not in again.headers


def test_a_reused_link_while_signed_in_leads_back_to_me(client, session, runtime, customer):
    """Clicking the e-mail's link again in the browser that is signed in with it is no error;
    the same link in a browser signed in as someone else, or signed out, still is."""
    path = issue_link(client, session, runtime, customer.id)
    assert client.get(path, follow_redirects=False).status_code == 303
    again = client.get(path, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/me"
    assert "set-cookie" not in again.headers  # the same session goes on
    assert client.get("/me").status_code == 200
    # expired as well as used: the same
    session.execute(update(SelfserviceLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert client.get(path, follow_redirects=False).headers["location"] == "/me"
    # a browser signed in as another customer gets the error page, not that customer's /me
    other = TestClient(client.app)
    sign_in(other, session, runtime, factories.create_customer(session, runtime).id)
    refused = other.get(path, follow_redirects=False)
    assert refused.status_code == 410 and "text/html" in refused.headers["content-type"]
    # signed out: the error page
    token = csrf(client, "/me")
    client.post("/me/logout", data={"csrf_token": token})
    assert client.get(path, follow_redirects=False).status_code == 410


def test_forged_and_expired_links_are_refused_kindly(client, session, runtime, customer):
    r = client.get("/me/login/" + "A" * 43, follow_redirects=False)
    assert r.status_code == 401
    assert "nicht gültig" in r.text
    path = issue_link(client, session, runtime, customer.id)
    session.execute(update(SelfserviceLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 410
    assert "abgelaufen" in r.text


def test_secure_cookie_behind_https(db_url, data_dir, session, customer):
    settings = Settings(
        data_dir=data_dir,
        database_url=db_url,
        public_url="https://vault.example",
        audit_seal_interval=0,
        _env_file=None,
    )
    rt = Runtime.build(settings)
    try:
        with TestClient(create_app(rt), base_url="https://vault.example") as c:
            path = issue_link(c, session, rt, customer.id)
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303
            assert "Secure" in r.headers["set-cookie"]
    finally:
        rt.engine.dispose()


def test_pages_need_a_session_and_are_never_cached(client, session, runtime, customer):
    for path in ("/me/consents", "/me/data", "/me/activity", "/me/export", "/me/erase"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "text/html" in r.headers["content-type"]
    # /me without a session: the form that mails a link, and nothing of any customer
    r = client.get("/me")
    assert r.status_code == 200
    assert 'action="/me/link"' in r.text and "csrf_token" not in r.text
    assert "Erika" not in r.text and r.headers["cache-control"] == "no-store"
    sign_in(client, session, runtime, customer.id)
    for path in ("/me", "/me/consents", "/me/data", "/me/activity", "/me/export", "/me/erase"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-store"
        csp = r.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert "<script" not in r.text
        assert " style=" not in r.text


def test_idle_session_ends(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    assert client.get("/me").status_code == 200
    session.execute(
        update(SelfserviceSession).values(last_seen_at=utcnow() - timedelta(minutes=31))
    )
    session.commit()
    r = client.get("/me/consents")
    assert r.status_code == 401
    assert "erneut an" in r.text


def test_logout_ends_the_session(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    cookie = client.cookies.get("vault_session")
    token = csrf(client, "/me")
    r = client.post("/me/logout", data={"csrf_token": token})
    assert r.status_code == 200
    assert session.execute(select(SelfserviceSession)).first() is None
    session.rollback()
    # the old cookie value is worthless now
    other = TestClient(client.app, cookies={"vault_session": cookie})
    assert other.get("/me/consents").status_code == 401
    r = other.get("/me")  # the form instead of the overview, and the dead cookie goes
    assert r.status_code == 200 and 'action="/me/link"' in r.text
    assert "vault_session=" in r.headers["set-cookie"]


# --- CSRF -----------------------------------------------------------------------------------


def test_post_without_the_csrf_token_is_refused(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    good = csrf(client)
    for data in (
        {"status": "granted"},
        {"status": "granted", "csrf_token": "0" * 64},
        {"status": "granted", "csrf_token": good[:-1] + ("0" if good[-1] != "0" else "1")},
    ):
        r = client.post("/me/consents/personalised_offers", data=data, follow_redirects=False)
        assert r.status_code == 403
        assert "nicht geprüft" in r.text
    assert _events(session, customer.id) == []
    # another session's token does not fit this one
    other = TestClient(client.app)
    sign_in(other, session, runtime, customer.id)
    theirs = csrf(other)
    assert theirs != good
    r = client.post(
        "/me/consents/personalised_offers",
        data={"status": "granted", "csrf_token": theirs},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert client.post("/me/logout", data={}).status_code == 403


# --- consents -------------------------------------------------------------------------------


def test_switching_a_consent_records_a_selfservice_event_and_gates_reads(
    session, runtime, app, customer
):
    reader = factories.auth_headers(session, runtime, "data:read", purposes=["personalised_offers"])
    ua = {"user-agent": "Mozilla/5.0 (X11; Linux) TestBrowser/1.0"}
    with TestClient(app, client=("203.0.113.77", 50000), headers=ua) as client:
        sign_in(client, session, runtime, customer.id)
        token = csrf(client)
        data_url = f"/v1/customers/{customer.id}/data?purpose=personalised_offers"
        assert client.get(data_url, headers=reader).status_code == 403
        r = client.post(
            "/me/consents/personalised_offers",
            data={"status": "granted", "csrf_token": token},
        )
        assert r.status_code == 200
        assert "wurde gespeichert" in r.text
        assert 'aria-checked="true" aria-describedby="s-personalised_offers"' in r.text
        read = client.get(data_url, headers=reader)
        assert read.status_code == 200
        assert read.json()["attributes"]["birth_date"] == "1984"
        r = client.post(
            "/me/consents/personalised_offers", data={"status": "withdrawn", "csrf_token": token}
        )
        assert r.status_code == 200
        read = client.get(data_url, headers=reader)
        assert read.status_code == 403
        assert read.json()["error"] == "consent_withdrawn"
    events = _events(session, customer.id)
    assert [e.status for e in events] == ["granted", "withdrawn"]
    for e in events:
        assert e.channel == "selfservice"
        assert e.actor == "customer"
        assert e.recorded_by == f"customer:{customer.id}"
        assert e.language == "de"
        # the link was mailed on an app's request: that app started the session
        issuer = session.execute(select(SelfserviceLink.issued_by)).scalar_one()
        session.rollback()
        assert issuer.startswith("client:")
        assert e.evidence == {
            "session_origin": issuer,
            "language": "de",
            "gpc": False,
            "user_agent": "Mozilla/5.0 (X11; Linux) TestBrowser/1.0",
            "ip": "203.0.113.0/24",
        }
    audited = session.execute(
        select(AuditEvent.actor_type, AuditEvent.actor_id).where(
            AuditEvent.action == "consent.recorded", AuditEvent.customer_id == customer.id
        )
    ).all()
    session.rollback()
    assert audited == [("customer", str(customer.id))] * 2


def test_double_opt_in_shows_waiting_for_confirmation(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    r = client.post(
        "/me/consents/newsletter", data={"status": "granted", "csrf_token": csrf(client)}
    )
    assert r.status_code == 200
    assert "Wartet auf Ihre Bestätigung" in r.text
    assert [e.status for e in _events(session, customer.id)] == ["pending_confirmation"]


def test_unknown_purpose_or_status_is_a_friendly_error(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    token = csrf(client)
    r = client.post("/me/consents/nonsense", data={"status": "granted", "csrf_token": token})
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]
    r = client.post("/me/consents/analytics", data={"status": "granted", "csrf_token": token})
    assert r.status_code == 422
    r = client.post("/me/consents/newsletter", data={"status": "confirmed", "csrf_token": token})
    assert r.status_code == 422
    assert _events(session, customer.id) == []


def test_objections_to_direct_marketing_and_legitimate_interest(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    token = csrf(client)
    r = client.post("/me/objection", data={"purpose": "direct_marketing", "csrf_token": token})
    assert r.status_code == 200
    assert "Widerspruch gegen Direktwerbung zurücknehmen" in r.text
    r = client.post("/me/objection", data={"purpose": "analytics", "csrf_token": token})
    assert r.status_code == 200
    c = _customer(session, customer.id)
    assert c.objection_set == {"direct_marketing", "analytics"}
    session.rollback()
    r = client.post(
        "/me/objection",
        data={"purpose": "analytics", "action": "withdraw", "csrf_token": token},
    )
    assert r.status_code == 200
    c = _customer(session, customer.id)
    assert c.objection_set == {"direct_marketing"}
    session.rollback()
    r = client.post("/me/objection", data={"purpose": "order_fulfilment", "csrf_token": token})
    assert r.status_code == 422


# --- GPC ------------------------------------------------------------------------------------


def test_gpc_on_first_visit_records_a_refusal_and_says_so(client, session, runtime, customer):
    factories.record_consent(session, runtime, customer.id, "third_party_ads", "granted")
    sign_in(client, session, runtime, customer.id, headers={"Sec-GPC": "1"})
    page = client.get("/me")
    assert "Global Privacy Control" in page.text
    assert "Werbung bei Partnern" in page.text
    events = _events(session, customer.id, "third_party_ads")
    assert [e.status for e in events] == ["granted", "refused"]
    gpc = events[-1]
    assert (gpc.method, gpc.channel, gpc.actor) == ("gpc", "selfservice", "customer")
    assert gpc.evidence["gpc"] is True
    # only purposes marked gpc_opt_out
    assert {e.purpose for e in _events(session, customer.id)} == {"third_party_ads"}


def test_no_gpc_header_records_nothing(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    assert "Global Privacy Control" not in client.get("/me").text
    assert _events(session, customer.id) == []


def test_gpc_respects_a_choice_made_on_the_page(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id, headers={"Sec-GPC": "1"})
    client.post(
        "/me/consents/third_party_ads", data={"status": "granted", "csrf_token": csrf(client)}
    )
    other = TestClient(client.app)
    sign_in(other, session, runtime, customer.id, headers={"Sec-GPC": "1"})
    statuses = [e.status for e in _events(session, customer.id, "third_party_ads")]
    assert statuses == ["refused", "granted"]
    assert "Global Privacy Control" not in other.get("/me").text


# --- language -------------------------------------------------------------------------------


def test_language_from_accept_language_query_and_cookie(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    r = client.get("/me/consents", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    assert '<html lang="en">' in r.text
    assert "My consents" in r.text and "Advertising with partners" in r.text
    r = client.get("/me/consents")
    assert '<html lang="de">' in r.text  # default without a header
    assert "Meine Einwilligungen" in r.text and "Werbung bei Partnern" in r.text
    r = client.get("/me/consents?lang=en", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in r.text
    assert "vault_lang=en" in r.headers["set-cookie"]
    r = client.get("/me/data", headers={"Accept-Language": "de"})
    assert '<html lang="en">' in r.text  # the cookie wins over the header
    assert "First name" in r.text
    r = client.get("/me/data?lang=xx")
    assert '<html lang="en">' in r.text  # unknown languages are ignored
    assert "set-cookie" not in r.headers
    # the consent event records the page language
    token = csrf(client)
    client.post("/me/consents/personalised_offers", data={"status": "granted", "csrf_token": token})
    (event,) = _events(session, customer.id)
    assert event.language == "en"
    assert event.evidence["language"] == "en"


# --- data, activity, export, erasure --------------------------------------------------------


def test_my_data_and_who_used_it(client, session, runtime, customer):
    app_client, _secret = factories.create_client(
        session, runtime, scopes=["data:read"], purposes=["loyalty_programme"], name="Kassen-App"
    )
    headers = {"Authorization": f"Bearer {factories.token(runtime, app_client)}"}
    r = client.get(
        f"/v1/customers/{customer.id}/data?purpose=loyalty_programme&attributes=first_name",
        headers=headers,
    )
    assert r.status_code == 200
    sign_in(client, session, runtime, customer.id)
    data = client.get("/me/data")
    assert "Erika" in data.text and "Vorname" in data.text and "17.05.1984" in data.text
    used = client.get("/me/activity?lang=en")
    assert "Kassen-App" in used.text
    assert "Loyalty card" in used.text
    assert "First name" in used.text
    export = client.post("/me/export", data={"csrf_token": csrf(client, "/me/data")})
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment")
    doc = export.json()
    assert doc["customer"]["id"] == str(customer.id)
    assert {a["name"]: a["value"] for a in doc["attributes"]}["first_name"] == "Erika"


def _recorded(session, customer_id) -> tuple[list[str], list[str]]:
    """The customer's data-subject requests (kinds) and audit actions so far."""
    kinds = session.execute(
        select(DataSubjectRequest.kind).where(DataSubjectRequest.customer_id == customer_id)
    ).scalars()
    actions = session.execute(
        select(AuditEvent.action).where(AuditEvent.customer_id == customer_id)
    ).scalars()
    out = (sorted(kinds), sorted(actions))
    session.rollback()
    return out


def test_get_export_records_nothing_only_the_button_exports(client, session, runtime, customer):
    """Issue 17: a GET of /me/export (a prefetch, a link preview) filed a portability request
    and audited an export. Now the GET explains and shows the button; the POST exports."""
    sign_in(client, session, runtime, customer.id)
    # the pages that offer the download offer this button, no link that a GET would follow
    for page in ("/me/data", "/me/erase"):
        html = client.get(page).text
        assert 'method="post" action="/me/export"' in html and 'href="/me/export"' not in html
    before = _recorded(session, customer.id)
    for _ in range(2):
        r = client.get("/me/export")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert 'method="post" action="/me/export"' in r.text
        assert "content-disposition" not in r.headers
    assert _recorded(session, customer.id) == before
    # a POST without the session's CSRF token is refused and records nothing
    r = client.post("/me/export", data={"csrf_token": "0" * 64})
    assert r.status_code == 403
    assert _recorded(session, customer.id) == before
    r = client.post("/me/export", data={"csrf_token": csrf(client, "/me/export")})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == 'attachment; filename="my-data.json"'
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["customer"]["id"] == str(customer.id)
    kinds, actions = _recorded(session, customer.id)
    assert kinds == sorted([*before[0], "portability"])
    assert actions.count("dsr.portability") == before[1].count("dsr.portability") + 1


def test_erasure_needs_confirmation_then_ends_link_and_session(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    spare_link = issue_link(client, session, runtime, customer.id)
    token = csrf(client, "/me/erase")
    r = client.post("/me/erase", data={"csrf_token": token})
    assert r.status_code == 422
    assert _customer(session, customer.id).status == "active"
    session.rollback()
    r = client.post("/me/erase", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 200
    assert "gelöscht" in r.text
    c = _customer(session, customer.id)
    assert c.status == "erased" and c.erased_by == f"customer:{customer.id}"
    assert session.execute(select(SelfserviceSession)).first() is None
    session.rollback()
    assert client.get("/me/consents").status_code == 401
    spare = TestClient(client.app).get(spare_link, follow_redirects=False)
    assert spare.status_code == 410
    assert "gelöscht" in spare.text


def test_session_of_an_erased_customer_stops(client, session, runtime, customer):
    sign_in(client, session, runtime, customer.id)
    session.execute(update(Customer).where(Customer.id == customer.id).values(status="erased"))
    session.commit()
    assert client.get("/me/consents").status_code == 401
    assert 'action="/me/link"' in client.get("/me").text


# --- isolation ------------------------------------------------------------------------------


def test_a_session_of_customer_a_never_touches_customer_b(client, session, runtime):
    a = factories.create_customer(session, runtime, first_name="Anna")
    b = factories.create_customer(session, runtime, first_name="Bernd")
    session.rollback()
    sign_in(client, session, runtime, a.id)
    token = csrf(client)
    # B's id in the query, the form and the path changes nothing of B
    client.post(
        f"/me/consents/personalised_offers?customer_id={b.id}",
        data={"status": "granted", "csrf_token": token, "customer_id": str(b.id)},
    )
    client.post(
        "/me/objection",
        data={"purpose": "direct_marketing", "csrf_token": token, "customer_id": str(b.id)},
    )
    assert client.post(f"/me/consents/{b.id}", data={"csrf_token": token}).status_code == 422
    page = client.get(f"/me/data?customer_id={b.id}")
    assert "Anna" in page.text and "Bernd" not in page.text
    export = client.post(
        f"/me/export?customer_id={b.id}", data={"csrf_token": token, "customer_id": str(b.id)}
    ).json()
    assert export["customer"]["id"] == str(a.id)
    r = client.post(
        f"/me/erase?customer_id={b.id}",
        data={"csrf_token": token, "confirm": "yes", "customer_id": str(b.id)},
    )
    assert r.status_code == 200
    assert _events(session, b.id) == []
    b_row = _customer(session, b.id)
    assert b_row.status == "active" and b_row.objections == ""
    a_row = _customer(session, a.id)
    assert a_row.status == "erased"
    session.rollback()
    assert [e.status for e in _events(session, a.id)] == ["granted"]


def _ledger_grant(session, runtime, customer_id, *, recorded_by: str, evidence: dict) -> None:
    """A selfservice-channel grant written straight to the ledger: as an app could record it
    before the channel was reserved for /me, or as a session someone else opened records it."""
    from vault.consent import store as consent_store

    now = utcnow()
    row = consent_store.event_row(
        signer=runtime.signer,
        issuer=runtime.settings.issuer,
        policy=runtime.policy,
        statement=consent_store.Statement(
            customer_id=customer_id,
            purpose=runtime.policy.purposes["third_party_ads"],
            version=runtime.policy.purposes["third_party_ads"].version,
            status="granted",
            channel="selfservice",
            method="toggle",
            actor="customer",
            language="de",
            occurred_at=now,
            evidence=evidence,
        ),
        recorded_by=recorded_by,
        now=now,
    )
    consent_store.insert_events(session, [row])
    consent_store.insert_states(session, consent_store.state_rows([row], now))
    session.commit()


@pytest.mark.parametrize(
    ("recorded_by", "evidence"),
    [
        ("client:cv_legacy", {}),  # an app wrote channel selfservice: not the customer's page
        ("customer:{cid}", {"session_origin": "staff:7"}),  # a staff member's session
        ("customer:{cid}", {"session_origin": "cli"}),  # an operator's link
    ],
)
def test_gpc_outweighs_a_selfservice_grant_that_was_not_the_customers_own(
    client, session, runtime, customer, recorded_by, evidence
):
    """Regression: the GPC rule skipped every purpose decided on channel selfservice, whoever
    recorded it; now only a grant the customer made in their own session outweighs GPC."""
    _ledger_grant(
        session,
        runtime,
        customer.id,
        recorded_by=recorded_by.format(cid=customer.id),
        evidence=evidence,
    )
    sign_in(client, session, runtime, customer.id, headers={"Sec-GPC": "1"})
    statuses = [e.status for e in _events(session, customer.id, "third_party_ads")]
    assert statuses == ["granted", "refused"]


def test_gpc_respects_the_customers_own_selfservice_grant(client, session, runtime, customer):
    _ledger_grant(
        session,
        runtime,
        customer.id,
        recorded_by=f"customer:{customer.id}",
        evidence={"session_origin": "customer"},
    )
    sign_in(client, session, runtime, customer.id, headers={"Sec-GPC": "1"})
    assert [e.status for e in _events(session, customer.id, "third_party_ads")] == ["granted"]
