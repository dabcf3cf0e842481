"""The preference forms of /me (contact channels, topics, frequency, pause) through the HTTP
app, on both databases: CSRF, friendly refusals that change nothing, and each success as a
preference-ledger event with channel selfservice that the API then shows. And the unsubscribe
page's "fewer e-mails instead" link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests import factories
from tests.preferences.helpers import granted_newsletter
from tests.selfservice.helpers import csrf, sign_in
from vault.crypto import unsubscribe as tokens
from vault.preferences.models import PreferenceEvent
from vault.selfservice.views import local_today

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def customer_id(session, runtime):
    """A customer with a confirmed newsletter and a granted personalised_offers consent, and
    push_notifications not granted."""
    cid = granted_newsletter(session, runtime)
    factories.record_consent(session, runtime, cid, "personalised_offers")
    session.rollback()
    return cid


@pytest.fixture
def signed_in(client, session, runtime, customer_id):
    sign_in(client, session, runtime, customer_id, headers={"user-agent": "Firefox/140"})
    return customer_id


def _events(session, customer_id) -> list[PreferenceEvent]:
    rows = list(
        session.execute(
            select(PreferenceEvent)
            .where(PreferenceEvent.customer_id == customer_id)
            .order_by(PreferenceEvent.seq)
        ).scalars()
    )
    session.rollback()
    return rows


def _api(client, session, runtime, customer_id) -> dict:
    headers = factories.auth_headers(session, runtime, "consent:read")
    r = client.get(f"/v1/customers/{customer_id}/preferences", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _tomorrow(runtime) -> str:
    return (local_today(datetime.now(UTC)) + timedelta(days=1)).isoformat()


# every form of the page: (path, fields that succeed, fields that are refused)
FORMS = {
    "channels": (
        "/me/preferences/personalised_offers/channels",
        {"contact_channel": ["email"]},
        {"contact_channel": ["email", "pigeon"]},
    ),
    "topics": (
        "/me/preferences/newsletter/topics",
        {"topic": ["fruit_vegetables", "recipes", "weekly_offers"]},
        {"topic": ["recipes", "whisky"]},
    ),
    "frequency": (
        "/me/preferences/newsletter/frequency",
        {"frequency": "monthly"},
        {"frequency": "daily"},
    ),
    "pause": ("/me/preferences/pause", {"until": None}, {"until": "2020-01-01"}),
}


def _fields(runtime, fields: dict) -> dict:
    return {k: (_tomorrow(runtime) if v is None else v) for k, v in fields.items()}


def test_consents_page_shows_the_forms_and_the_sentence(client, runtime, signed_in):
    page = client.get("/me/consents?lang=en")
    assert page.status_code == 200
    html = page.text
    # the granted newsletter: three forms, each a fieldset with a legend and a submit button
    for form in ("channels", "topics", "frequency"):
        assert f'action="/me/preferences/newsletter/{form}"' in html
    assert html.count("<fieldset>") == html.count("<legend>") >= 5
    assert 'id="tp-newsletter-wine"' in html and 'for="tp-newsletter-wine"' in html
    assert 'type="radio" id="fq-newsletter-weekly" name="frequency" value="weekly" checked' in html
    assert "You receive from us: <strong>at most once a week, by e-mail</strong>." in html
    # push_notifications is not granted: no switches, the explanation instead
    assert 'action="/me/preferences/push_notifications/' not in html
    assert 'id="na-push_notifications"' in html
    # the pause: a date input from tomorrow on, labelled, and its button
    assert 'type="date" id="pause-until" name="until"' in html
    assert f'min="{_tomorrow(runtime)}"' in html
    assert '<label for="pause-until">' in html


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_form_without_the_csrf_token_is_refused(client, session, runtime, signed_in, form):
    path, good, _bad = FORMS[form]
    r = client.post(path, data=_fields(runtime, good), follow_redirects=False)
    assert r.status_code == 403
    assert "text/html" in r.headers["content-type"]
    r = client.post(
        path, data={**_fields(runtime, good), "csrf_token": "0" * 64}, follow_redirects=False
    )
    assert r.status_code == 403
    assert _events(session, signed_in) == []


@pytest.mark.parametrize("form", sorted(FORMS))
def test_wrong_values_get_a_friendly_page_and_change_nothing(
    client, session, runtime, signed_in, form
):
    path, _good, bad = FORMS[form]
    before = _api(client, session, runtime, signed_in)
    token = csrf(client)
    r = client.post(path, data={**bad, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]
    assert (
        "Nothing was changed"
        in client.post(f"{path}?lang=en", data={**bad, "csrf_token": token}).text
    )
    assert _events(session, signed_in) == []
    assert _api(client, session, runtime, signed_in) == before


def test_other_wrong_inputs_are_refused_too(client, session, runtime, signed_in):
    token = csrf(client)
    cases = [
        ("/me/preferences/nope/topics", {"topic": ["wine"]}, 422),  # no such purpose
        ("/me/preferences/analytics/topics", {"topic": []}, 422),  # a purpose without choices
        ("/me/preferences/newsletter/frequency", {}, 422),  # no radio chosen
        ("/me/preferences/newsletter/frequency", {"frequency": "x" * 100}, 422),
        ("/me/preferences/newsletter/topics", {"topic": ["wine"] * 40}, 422),  # no such form
        ("/me/preferences/newsletter/topics", {"topic": ["push"]}, 422),
        ("/me/preferences/newsletter/channels", {"contact_channel": ["push"]}, 422),
        ("/me/preferences/pause", {"until": "morgen"}, 422),
        ("/me/preferences/pause", {"until": local_today(datetime.now(UTC)).isoformat()}, 422),
        ("/me/preferences/pause", {"until": "2999-01-01"}, 422),
        ("/me/preferences/pause", {}, 422),
        ("/me/preferences/pause", {"until": "2027-01-01" * 20}, 422),
        # not granted: the page offers no such form, and a crafted one is refused
        ("/me/preferences/push_notifications/channels", {"contact_channel": []}, 409),
    ]
    for path, fields, status in cases:
        r = client.post(path, data={**fields, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == status, (path, fields, r.status_code)
        assert "text/html" in r.headers["content-type"]
        assert "Traceback" not in r.text
    assert _events(session, signed_in) == []


def _assert_selfservice_event(event: PreferenceEvent, customer_id) -> None:
    assert event.channel == "selfservice"
    assert event.actor == "customer"
    assert event.recorded_by == f"customer:{customer_id}"
    assert event.evidence["session_origin"].startswith("client:")
    assert event.evidence["user_agent"] == "testclient"
    assert "gpc" not in event.evidence


def test_topics_form_turns_wine_off(client, session, runtime, signed_in):
    path, good, _ = FORMS["topics"]
    r = client.post(path, data={**good, "csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/me/consents?prefs_saved=newsletter#prefs-newsletter"
    [event] = _events(session, signed_in)
    _assert_selfservice_event(event, signed_in)
    assert event.change == {
        "topics": {
            "newsletter": {
                "fruit_vegetables": True,
                "wine": False,
                "recipes": True,
                "weekly_offers": True,
            }
        }
    }
    body = _api(client, session, runtime, signed_in)
    assert body["topics"]["newsletter"]["wine"] is False
    assert body["topics"]["newsletter"]["recipes"] is True
    page = client.get(r.headers["location"].split("#")[0] + "&lang=en")
    assert 'role="status"' in page.text
    assert "Your choices for “Newsletter” have been saved." in page.text
    assert "only about fruit and vegetables, recipes and weekly offers" in page.text
    assert 'id="tp-newsletter-wine" name="topic" value="wine"' in page.text
    assert 'value="wine" aria-describedby="tpd-newsletter-wine" checked' not in page.text


def test_frequency_form_sets_monthly(client, session, runtime, signed_in):
    path, good, _ = FORMS["frequency"]
    r = client.post(path, data={**good, "csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    [event] = _events(session, signed_in)
    _assert_selfservice_event(event, signed_in)
    assert event.change == {"frequency": {"newsletter": "monthly"}}
    assert _api(client, session, runtime, signed_in)["frequency"]["newsletter"] == "monthly"
    page = client.get("/me/consents?lang=de")
    assert (
        "Sie bekommen von uns: <strong>höchstens einmal im Monat, per E-Mail</strong>." in page.text
    )


def test_channels_form_turns_push_off_for_every_purpose(client, session, runtime, signed_in):
    path, good, _ = FORMS["channels"]
    r = client.post(path, data={**good, "csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].endswith("#prefs-personalised_offers")
    [event] = _events(session, signed_in)
    _assert_selfservice_event(event, signed_in)
    assert event.change == {"contact_channels": {"email": True, "push": False}}
    body = _api(client, session, runtime, signed_in)
    assert body["contact_channels"] == {"email": True, "push": False}
    # nothing ticked: every channel of the purpose off, and the sentence says "nothing"
    r = client.post(path, data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303
    assert _api(client, session, runtime, signed_in)["contact_channels"]["email"] is False
    page = client.get("/me/consents?lang=en")
    assert "You receive from us: <strong>nothing</strong>." in page.text


def test_pause_until_tomorrow_and_end_it(client, session, runtime, signed_in):
    day = _tomorrow(runtime)
    token = csrf(client)
    r = client.post(
        "/me/preferences/pause",
        data={"until": day, "action": "pause", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/me/consents?paused=on#pause"
    [event] = _events(session, signed_in)
    _assert_selfservice_event(event, signed_in)
    until = datetime.fromisoformat(_api(client, session, runtime, signed_in)["paused_until"])
    assert until.astimezone(BERLIN).isoformat().startswith(f"{day}T00:00:00")
    page = client.get(r.headers["location"].split("#")[0] + "&lang=en")
    assert "Paused: you receive no advertising from us until" in page.text
    assert "nothing until " in page.text and ", then at most once a week, by e-mail" in page.text
    assert 'name="action" value="end"' in page.text
    r = client.post(
        "/me/preferences/pause", data={"action": "end", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/me/consents?paused=off#pause"
    assert len(_events(session, signed_in)) == 2
    assert _api(client, session, runtime, signed_in)["paused_until"] is None
    assert "Your pause has ended" in client.get("/me/consents?paused=off&lang=en").text


def test_a_withdrawn_consent_shows_its_preferences_as_not_applicable(
    client, session, runtime, signed_in
):
    token = csrf(client)
    r = client.post("/me/consents/newsletter", data={"status": "withdrawn", "csrf_token": token})
    assert r.status_code == 200
    assert 'action="/me/preferences/newsletter/' not in r.text
    assert 'id="na-newsletter"' in r.text
    r = client.post(
        "/me/preferences/newsletter/topics",
        data={"topic": ["wine"], "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert _events(session, signed_in) == []


def test_unsubscribe_page_links_to_me_and_the_post_stays_one_click(
    client, session, runtime, customer_id
):
    token = tokens.for_index_key(runtime.envelope.keys.index_key).make(customer_id, "newsletter")
    page = client.get(f"/unsubscribe/{token}?lang=en", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert '<a href="/me?lang=en">Change what you receive</a>' in page.text
    assert "<form" in page.text and page.text.count("<form") == 1  # no preference form here
    r = client.post(
        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, headers={"accept": "*/*"}
    )
    assert r.status_code == 200 and r.json() == {"status": "unsubscribed"}
    assert _events(session, customer_id) == []
