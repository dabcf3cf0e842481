"""Issue 19 items 2 and 5, the pages: store staff sign in (password + TOTP), find a customer
by phone, see only their role's values, record a grant read from a script version; the gated
API read then answers 200 and the ledger event carries staff id, store and script version;
the customer's "who used my data" names the store. Call centre mails a link it never sees."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests import factories
from tests.staff.helpers import make_staff, signed_in
from vault.consent.models import ConsentEvent
from vault.dsr.models import DataSubjectRequest
from vault.mail.models import MailMessage
from vault.selfservice.models import SelfserviceLink

PHONE = "+49 221 5550100"


def _customer(session, runtime):
    return factories.create_customer(
        session,
        runtime,
        phone=PHONE,
        loyalty_number="TE00000042",
        loyalty_points=1234,
        street="Venloer Str. 1",
        birth_date="1984-05-17",
    )


def _find(client, csrf, by="phone", value=PHONE):
    return client.post(
        "/staff/customers/find",
        data={"by": by, "value": value, "csrf_token": csrf},
        follow_redirects=False,
    )


def test_store_finds_by_phone_records_a_grant_and_the_gated_read_answers(client, runtime, session):
    customer = _customer(session, runtime)
    staff = make_staff(runtime, "store")
    csrf = signed_in(client, staff)

    r = _find(client, csrf)
    assert r.status_code == 303 and r.headers["location"] == f"/staff/customers/{customer.id}"
    assert PHONE not in r.headers["location"]
    card = client.get(r.headers["location"] + "?lang=de")
    assert card.status_code == 200
    assert "1.234" in card.text and "TE00000042" in card.text  # loyalty_programme may use them
    assert "Venloer" not in card.text and "1984" not in card.text and PHONE not in card.text

    form = client.get(f"/staff/customers/{customer.id}/consents/personalised_offers?lang=en")
    assert form.status_code == 200
    policy_script = runtime.policy.scripts["offers_counter"]
    assert policy_script.text.en in form.text and policy_script.text.de in form.text
    assert 'value="offers_counter.v1"' in form.text

    done = client.post(
        f"/staff/customers/{customer.id}/consents/personalised_offers",
        data={
            "status": "granted",
            "script": "offers_counter.v1",
            "language": "de",
            "csrf_token": csrf,
        },
    )
    assert done.status_code == 200, done.text
    session.rollback()
    event = session.execute(
        select(ConsentEvent).where(
            ConsentEvent.customer_id == customer.id, ConsentEvent.purpose == "personalised_offers"
        )
    ).scalar_one()
    assert str(event.id) in done.text
    assert event.channel == "store" and event.recorded_by == f"staff:{staff.id}"
    assert event.evidence["staff_id"] == staff.id
    assert event.evidence["store_id"] == "koeln-ehrenfeld"
    assert event.evidence["script_version"] == "offers_counter.v1"

    app_client, _secret = factories.create_client(
        session, runtime, scopes=["data:read"], purposes=["personalised_offers"]
    )
    headers = {"Authorization": f"Bearer {factories.token(runtime, app_client, 'data:read')}"}
    read = client.get(
        f"/v1/customers/{customer.id}/data?purpose=personalised_offers", headers=headers
    )
    assert read.status_code == 200, read.text
    assert read.json()["attributes"]["loyalty_points"] == 1234


def test_not_found_says_so_and_nothing_else(client, runtime, session):
    _customer(session, runtime)
    csrf = signed_in(client, make_staff(runtime, "store"))
    r = _find(client, csrf, value="+49 30 1234567")
    assert r.status_code == 404
    assert "No customer found" in r.text or "Niemanden gefunden" in r.text
    assert "/staff/customers/" not in r.text.replace("/staff/customers/find", "")


def test_a_grant_without_the_current_script_is_not_recorded(client, runtime, session):
    customer = _customer(session, runtime)
    csrf = signed_in(client, make_staff(runtime, "store"))
    for script, status_code in [
        ("", 422),
        ("offers_counter.v0", 409),
        ("newsletter_phone.v3", 422),
    ]:
        r = client.post(
            f"/staff/customers/{customer.id}/consents/personalised_offers?lang=en",
            data={"status": "granted", "script": script, "csrf_token": csrf},
        )
        assert r.status_code == status_code, (script, r.text[:300])
        assert 'role="alert"' in r.text
    session.rollback()
    assert session.execute(select(ConsentEvent.id)).first() is None


def test_call_centre_mails_a_link_it_never_sees_and_starts_a_request(client, runtime, session):
    customer = _customer(session, runtime)
    staff = make_staff(runtime, "call_center")
    csrf = signed_in(client, staff)
    r = client.post(f"/staff/customers/{customer.id}/link", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert "/me/login/" not in r.text and not re.search(r"token=|/login/[A-Za-z0-9_-]{20,}", r.text)
    session.rollback()
    link = session.execute(
        select(SelfserviceLink).where(SelfserviceLink.customer_id == customer.id)
    ).scalar_one()
    assert link.origin == f"staff:{staff.id}"
    assert (
        session.execute(
            select(MailMessage.template).where(MailMessage.customer_id == customer.id)
        ).scalar_one()
        == "selfservice_link"
    )

    r = client.post(
        f"/staff/customers/{customer.id}/requests", data={"kind": "erasure", "csrf_token": csrf}
    )
    assert r.status_code == 200
    session.rollback()
    req = session.execute(
        select(DataSubjectRequest).where(DataSubjectRequest.customer_id == customer.id)
    ).scalar_one()
    assert req.kind == "erasure" and req.created_by == f"staff:{staff.id}"
    assert str(req.id) in r.text


def test_me_activity_names_the_store(client, runtime, session):
    from tests.selfservice.helpers import sign_in

    customer = _customer(session, runtime)
    csrf = signed_in(client, make_staff(runtime, "store"))
    assert _find(client, csrf).status_code == 303
    assert client.get(f"/staff/customers/{customer.id}").status_code == 200
    client.cookies.clear()
    sign_in(client, session, runtime, customer.id)
    de = client.get("/me/activity?lang=de")
    assert "Kundenservice, Filiale Köln-Ehrenfeld" in de.text
    en = client.get("/me/activity?lang=en")
    assert "customer service, store Köln-Ehrenfeld" in en.text
    assert "found your customer account" in en.text


def test_too_many_links_for_one_customer_is_a_page_not_a_crash(client, runtime, session):
    from vault.audit.models import AuditEvent

    customer = _customer(session, runtime)
    csrf = signed_in(client, make_staff(runtime, "call_center"))
    limit = int(runtime.settings.rate_limit_link_customer.split("/")[0])
    for _ in range(limit):
        r = client.post(f"/staff/customers/{customer.id}/link", data={"csrf_token": csrf})
        assert r.status_code == 200
    r = client.post(f"/staff/customers/{customer.id}/link?lang=en", data={"csrf_token": csrf})
    assert r.status_code == 429 and "retry-after" in r.headers
    assert "several links" in r.text
    session.rollback()
    throttled = session.execute(
        select(AuditEvent).where(
            AuditEvent.customer_id == customer.id,
            AuditEvent.action == "selfservice.link_throttled",
        )
    ).scalars()
    assert [e.actor_type for e in throttled] == ["staff"]
