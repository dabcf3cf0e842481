"""Double opt-in end to end: the grant mails its link over real SMTP (loopback); the GET of the
link confirms nothing; the button does, with the mail's id in the evidence."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlmodel import Session

from tests.factories import auth_headers, create_customer
from tests.mail.helpers import drain, smtp_runtime
from vault.consent.models import ConsentEvent
from vault.db import reader
from vault.mail import receipts as mail_receipts
from vault.mail.delivery import Deliverer


def _status(client, headers, cid) -> str:
    r = client.get(f"/v1/customers/{cid}/consents", headers=headers)
    return {p["purpose"]: p["status"] for p in r.json()["purposes"]}["newsletter"]


def test_api_grant_mails_the_link_get_changes_nothing_the_button_confirms(
    client, session, runtime, smtpd
):
    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    customer = create_customer(session, runtime, email="erika.doi@example.de")
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write", "consent:read")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["confirmation_token"] is None and body["confirmation_delivery"] == "mail"
    assert drain(Deliverer(rt)) == 1
    assert len(server.messages) == 1
    raw = server.raw[0].decode()
    assert "erika.doi@example.de" in raw and "Tante Emma Online GmbH" in raw
    assert "Willkommen" not in raw and "<img" not in raw
    token = re.search(r"/confirm/([A-Za-z0-9_-]{40,})", raw).group(1)

    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert _status(client, writer, customer.id) == "pending_confirmation"

    pressed = client.post(
        f"/confirm/{token}",
        data={"confirm": "yes"},
        headers={"User-Agent": "Firefox/128.0", "Sec-Fetch-Site": "same-origin"},
    )
    assert pressed.status_code == 200, pressed.text
    assert _status(client, writer, customer.id) == "granted"
    again = client.post(f"/confirm/{token}", data={"confirm": "yes"})
    assert again.status_code == 409 and "<html" in again.text

    with Session(reader(runtime.engine)) as s:
        event = s.execute(
            select(ConsentEvent).where(
                ConsentEvent.customer_id == customer.id, ConsentEvent.status == "confirmed"
            )
        ).scalar_one()
        evidence = dict(event.evidence)
        found = [str(x.mail_id) for x in mail_receipts.for_customer(s, customer.id)]
        s.rollback()
    assert evidence["mail_id"] and evidence["user_agent"] == "Firefox/128.0"
    assert found == [evidence["mail_id"]]


def test_api_cannot_record_channel_selfservice(client, session, runtime):
    customer = create_customer(session, runtime)
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "selfservice"},
        headers=writer,
    )
    assert r.status_code == 422 and r.json()["error"] == "channel_not_allowed"


def test_cross_site_press_is_refused(client, session, runtime):
    customer = create_customer(session, runtime)
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write", "consent:confirm")
    token = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    ).json()["confirmation_token"]
    r = client.post(
        f"/confirm/{token}", data={"confirm": "yes"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 403
