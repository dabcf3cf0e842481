"""Issue 19 item 2, preferences at the counter: the card shows per purpose the /me sentence and
the preference ledger's changes in plain words; staff record the choices the customer states
(touchpoint store / call_center, staff id and store in the evidence), only for a purpose the
customer has granted; wrong values are a friendly 422 and nothing is written; CSRF is required."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from tests import factories
from tests.staff.helpers import make_staff, signed_in
from vault.preferences.models import PreferenceEvent

PURPOSE = "personalised_offers"


def _granted(client, runtime, session, role="store"):
    customer = factories.create_customer(session, runtime, phone="+49 221 5550199")
    staff = make_staff(runtime, "store")  # the store has the script of this purpose
    csrf = signed_in(client, staff)
    r = client.post(
        f"/staff/customers/{customer.id}/consents/{PURPOSE}",
        data={"status": "granted", "script": "offers_counter.v1", "csrf_token": csrf},
    )
    assert r.status_code == 200, r.text
    if role != "store":
        client.cookies.clear()
        staff = make_staff(runtime, role)
        csrf = signed_in(client, staff)
    return customer, staff, csrf


def _events(session, customer_id) -> list[PreferenceEvent]:
    session.rollback()
    return list(
        session.execute(
            select(PreferenceEvent).where(PreferenceEvent.customer_id == customer_id)
        ).scalars()
    )


def test_store_records_the_customers_choices_and_the_card_shows_them(client, runtime, session):
    customer, staff, csrf = _granted(client, runtime, session)
    card = client.get(f"/staff/customers/{customer.id}?lang=de")
    assert f'action="/staff/customers/{customer.id}/preferences/{PURPOSE}"' in card.text
    assert f'action="/staff/customers/{customer.id}/preferences/newsletter"' not in card.text

    r = client.post(
        f"/staff/customers/{customer.id}/preferences/{PURPOSE}",
        data={
            "contact_channel": "email",  # push goes off
            "topic": "loyalty",  # weekly offers go off
            "frequency": "monthly",
            "language": "de",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/staff/customers/{customer.id}?saved=choices#prefs-{PURPOSE}"

    (event,) = _events(session, customer.id)
    assert event.channel == "store" and event.recorded_by == f"staff:{staff.id}"
    assert event.actor == "customer"
    assert event.evidence["staff_id"] == staff.id
    assert event.evidence["store_id"] == "koeln-ehrenfeld"
    assert event.change == {
        "contact_channels": {"email": True, "push": False},
        "topics": {PURPOSE: {"weekly_offers": False, "loyalty": True}},
        "frequency": {PURPOSE: "monthly"},
    }

    headers = factories.auth_headers(session, runtime, "consent:read")
    api = client.get(f"/v1/customers/{customer.id}/preferences", headers=headers)
    assert api.status_code == 200, api.text
    body = api.json()
    assert body["contact_channels"]["push"] is False
    assert body["topics"][PURPOSE] == {"weekly_offers": False, "loyalty": True}
    assert body["frequency"][PURPOSE] == "monthly"

    de = client.get(r.headers["location"].split("#")[0] + "&lang=de")
    assert "Gespeichert" in de.text
    assert "höchstens einmal im Monat, per E-Mail, nur zu den Themen Treuepunkte" in de.text
    assert "Push-Nachricht aus" in de.text and "Wochenangebote aus" in de.text
    assert f"Mitarbeiter*in {staff.id}" in de.text and "Filiale (Köln-Ehrenfeld)" in de.text
    en = client.get(f"/staff/customers/{customer.id}?lang=en")
    assert "at most once a month, by e-mail, only about loyalty points" in en.text
    assert "Push notification off" in en.text


def test_call_centre_pauses_and_ends_the_pause(client, runtime, session):
    customer, staff, csrf = _granted(client, runtime, session, role="call_center")
    r = client.post(
        f"/staff/customers/{customer.id}/pause",
        data={"action": "pause", "until": "2099-01-01", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 422  # more than two years ahead: friendly page, nothing written
    assert "<html" in r.text.lower()
    assert _events(session, customer.id) == []
    until = (date.today() + timedelta(days=10)).isoformat()
    r = client.post(
        f"/staff/customers/{customer.id}/pause",
        data={"action": "pause", "until": until, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    (event,) = _events(session, customer.id)
    assert event.channel == "call_center" and event.evidence["staff_id"] == staff.id
    assert event.change["paused_until"].startswith(until)
    card = client.get(f"/staff/customers/{customer.id}?lang=en")
    assert "Paused: the customer receives no advertising until" in card.text
    assert "paused until" in card.text and "call centre" in card.text


def test_no_grant_no_form_and_the_post_is_refused(client, runtime, session):
    customer = factories.create_customer(session, runtime)
    csrf = signed_in(client, make_staff(runtime, "store"))
    card = client.get(f"/staff/customers/{customer.id}?lang=en")
    assert "/preferences/" not in card.text
    assert "Nothing to choose while this consent is not given" in card.text
    r = client.post(
        f"/staff/customers/{customer.id}/preferences/{PURPOSE}",
        data={"contact_channel": "email", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert _events(session, customer.id) == []


def test_wrong_values_are_a_friendly_422_and_nothing_is_written(client, runtime, session):
    customer, _staff, csrf = _granted(client, runtime, session)
    for data in (
        {"contact_channel": "fax"},
        {"contact_channel": "email", "topic": "wine"},
        {"contact_channel": "email", "frequency": "daily"},
    ):
        r = client.post(
            f"/staff/customers/{customer.id}/preferences/{PURPOSE}?lang=en",
            data={**data, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 422, (data, r.text)
        assert "<html" in r.text.lower()
    r = client.post(
        f"/staff/customers/{customer.id}/preferences/nope",
        data={"contact_channel": "email", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code in (404, 422)
    assert _events(session, customer.id) == []


def test_without_csrf_nothing_is_recorded(client, runtime, session):
    customer, _staff, _csrf = _granted(client, runtime, session)
    r = client.post(
        f"/staff/customers/{customer.id}/preferences/{PURPOSE}",
        data={"contact_channel": "email", "frequency": "monthly"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    r = client.post(
        f"/staff/customers/{customer.id}/pause",
        data={"action": "pause", "until": "2030-01-01", "csrf_token": "x" * 43},
        follow_redirects=False,
    )
    assert r.status_code == 403
    session.rollback()
    assert session.execute(select(func.count()).select_from(PreferenceEvent)).scalar_one() == 0
