"""End to end: the customer's filters leave them out of the audience export and the gated read."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import auth_headers
from tests.preferences.helpers import audience_ids, change, granted_newsletter, report_contacts
from vault.db import utcnow


def test_wine_off_leaves_the_customer_out_of_wine_but_not_recipes(client, session, runtime):
    cid = granted_newsletter(session, runtime)
    other = granted_newsletter(session, runtime)
    reader = auth_headers(session, runtime, "data:read", purposes=["newsletter"])
    assert {str(cid), str(other)} <= audience_ids(client, reader, "newsletter", topic="wine")
    change(session, runtime, cid, topics={"newsletter": {"wine": False}})
    wine = audience_ids(client, reader, "newsletter", contact_channel="email", topic="wine")
    recipes = audience_ids(client, reader, "newsletter", contact_channel="email", topic="recipes")
    assert str(cid) not in wine and str(other) in wine
    assert str(cid) in recipes
    r = client.get(
        f"/v1/customers/{cid}/data",
        headers=reader,
        params={"purpose": "newsletter", "topic": "wine"},
    )
    assert r.status_code == 403 and r.json()["error"] == "topic_opted_out"
    r = client.get(
        f"/v1/customers/{cid}/data",
        headers=reader,
        params={"purpose": "newsletter", "topic": "recipes"},
    )
    assert r.status_code == 200, r.text


def test_pause_until_tomorrow_leaves_the_customer_out_of_every_marketing_export(
    client, session, runtime
):
    cid = granted_newsletter(session, runtime)
    from tests.factories import record_consent

    record_consent(session, runtime, cid, "personalised_offers")
    reader = auth_headers(
        session, runtime, "data:read", purposes=["newsletter", "personalised_offers"]
    )
    change(session, runtime, cid, paused_until=utcnow() + timedelta(days=1))
    assert str(cid) not in audience_ids(client, reader, "newsletter")
    for channel in ("email", "push"):
        ids = audience_ids(client, reader, "personalised_offers", contact_channel=channel)
        assert str(cid) not in ids
    r = client.get(f"/v1/customers/{cid}/data", headers=reader, params={"purpose": "newsletter"})
    assert r.status_code == 403 and r.json()["error"] == "paused"
    change(session, runtime, cid, paused_until=None)
    assert str(cid) in audience_ids(client, reader, "newsletter")


def test_monthly_and_one_contact_this_month_leaves_the_customer_out(client, session, runtime):
    cid = granted_newsletter(session, runtime)
    other = granted_newsletter(session, runtime)
    reader = auth_headers(session, runtime, "data:read", purposes=["newsletter"])
    sender = auth_headers(session, runtime, "contacts:write", purposes=["newsletter"])
    change(session, runtime, cid, frequency={"newsletter": "monthly"})
    sent = utcnow().isoformat()
    report = report_contacts(
        client,
        sender,
        [
            {
                "customer_id": str(cid),
                "purpose": "newsletter",
                "contact_channel": "email",
                "sent_at": sent,
            },
        ],
    )
    assert report["accepted"] == 1 and report["rejected"] == 0
    ids = audience_ids(client, reader, "newsletter")
    assert str(cid) not in ids and str(other) in ids
    r = client.get(f"/v1/customers/{cid}/data", headers=reader, params={"purpose": "newsletter"})
    assert r.status_code == 403 and r.json()["error"] == "frequency_cap_reached"
