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


def test_the_import_cannot_record_channel_selfservice(client, session, runtime):
    import orjson

    line = {
        "attributes": {"email": "imp.self@example.de"},
        "consents": [{"purpose": "newsletter", "status": "granted", "channel": "selfservice"}],
    }
    headers = auth_headers(session, runtime, "customers:write", "consent:write")
    r = client.post(
        "/v1/customers/import",
        content=orjson.dumps(line) + b"\n",
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 0
    assert [e["error"] for e in r.json()["errors"]] == ["channel_not_allowed"]


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


# --- every door: /me, the import; no address; superseded; a deliverer that dies ------------

TOKEN = re.compile(r"/confirm/([A-Za-z0-9_-]{40,})")


def _text(message) -> str:
    """The plain-text part, decoded (whatever transfer encoding the mail used)."""
    return f"Subject: {message['Subject']}\n" + message.get_body(("plain",)).get_content()


def _gated_read(client, session, runtime, cid) -> int:
    app = auth_headers(session, runtime, "data:read", purposes=["newsletter"])
    r = client.get(f"/v1/customers/{cid}/data", params={"purpose": "newsletter"}, headers=app)
    return r.status_code


def test_a_grant_on_me_mails_one_link_and_its_button_opens_the_gated_read(
    client, session, runtime, smtpd
):
    from tests.selfservice.helpers import csrf, sign_in

    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    customer = create_customer(session, runtime, email="me.doi@example.de", preferred_language="en")
    session.rollback()
    sign_in(client, session, runtime, customer.id)
    assert drain(Deliverer(rt)) == 1  # the sign-in link itself came by mail
    server.messages.clear()
    r = client.post(
        "/me/consents/newsletter",
        data={"status": "granted", "csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "no_email" not in r.headers["location"]
    assert drain(Deliverer(rt)) == 1
    assert drain(Deliverer(rt)) == 0  # exactly one
    assert len(server.messages) == 1
    text = _text(server.messages[0])
    assert server.messages[0]["To"] == "me.doi@example.de"
    assert "Please confirm your consent" in text  # the stored preferred_language
    token = TOKEN.search(text).group(1)
    assert _gated_read(client, session, runtime, customer.id) == 403
    assert f"/confirm/{token}?lang=en" in text  # the page opens in the mail's language
    page = client.get(f"/confirm/{token}?lang=en")
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert _gated_read(client, session, runtime, customer.id) == 403  # GET confirms nothing
    r = client.post(f"/confirm/{token}", data={"confirm": "yes"})
    assert r.status_code == 200, r.text
    assert _gated_read(client, session, runtime, customer.id) == 200


def test_the_api_grant_opens_the_gated_read_only_after_the_button(client, session, runtime, smtpd):
    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    customer = create_customer(session, runtime)
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "app"},
        headers=writer,
    )
    assert r.status_code == 201
    assert drain(Deliverer(rt)) == 1
    token = TOKEN.search(_text(server.messages[0])).group(1)
    # the mailed token is the customer's: an app with consent:confirm cannot use it
    confirmer = auth_headers(session, runtime, "consent:confirm")
    r = client.post("/v1/consents/confirm", json={"token": token}, headers=confirmer)
    assert r.status_code == 404 and r.json()["error"] == "confirmation_token_not_found"
    client.get(f"/confirm/{token}")
    assert _gated_read(client, session, runtime, customer.id) == 403
    assert client.post(f"/confirm/{token}", data={"confirm": "yes"}).status_code == 200
    assert _gated_read(client, session, runtime, customer.id) == 200


def test_the_import_mails_granted_double_opt_in_lines_and_not_confirmed_ones(
    client, session, runtime, smtpd
):
    import orjson

    server = smtpd()
    rt = smtp_runtime(runtime, server.url())

    def line(email: str, status: str, **attributes) -> bytes:
        doc = {
            "attributes": {"email": email, **attributes},
            "consents": [{"purpose": "newsletter", "status": status, "channel": "email"}],
        }
        return orjson.dumps(doc) + b"\n"

    body = (
        line("imp.one@example.de", "granted")
        + line("imp.two@example.de", "granted", preferred_language="en")
        + line("imp.three@example.de", "confirmed")
    )
    headers = auth_headers(session, runtime, "customers:write", "consent:write")
    r = client.post(
        "/v1/customers/import",
        content=body,
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert drain(Deliverer(rt)) == 2
    texts = {str(m["To"]): _text(m) for m in server.messages}
    assert sorted(texts) == ["imp.one@example.de", "imp.two@example.de"]  # not imp.three
    assert "Bitte bestätigen Sie Ihre Einwilligung" in texts["imp.one@example.de"]
    assert "Please confirm your consent" in texts["imp.two@example.de"]
    assert all(TOKEN.search(t) for t in texts.values())


def test_a_grant_without_a_stored_address_stays_pending_and_says_no_email(client, session, runtime):
    from tests.mail.helpers import mails
    from vault.consent.models import ConsentConfirmation

    customer = create_customer(session, runtime)
    session.rollback()
    r = client.patch(
        f"/v1/customers/{customer.id}",
        json={"attributes": {"email": None}},  # the address removed
        headers=auth_headers(session, runtime, "customers:write"),
    )
    assert r.status_code == 200, r.text
    writer = auth_headers(session, runtime, "consent:write", "consent:read")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["confirmation_delivery"] == "no_email" and body["confirmation_token"] is None
    assert body["state"]["status"] == "pending_confirmation"
    assert mails(runtime) == []
    with Session(reader(runtime.engine)) as s:
        assert s.execute(select(ConsentConfirmation)).first() is None
        s.rollback()
    # on /me the customer is told why no link comes (no address, so no mailed sign-in link
    # either: the operator's CLI hands one out, as `vault demo` does)
    from tests.selfservice.helpers import csrf
    from vault.db import transaction
    from vault.provenance import CLI
    from vault.selfservice import sessions

    with transaction(runtime.engine) as s:
        link = sessions.issue_link(
            session=s, settings=runtime.settings, customer_id=customer.id, by=CLI
        )
    path = link.url.removeprefix(runtime.settings.public_url.rstrip("/"))
    assert client.get(path, follow_redirects=False).status_code == 303
    r = client.post(
        "/me/consents/newsletter", data={"status": "granted", "csrf_token": csrf(client)}
    )
    assert r.status_code == 200 and "no_email=1" in str(r.url)
    assert "wir haben keine E-Mail-Adresse von Ihnen" in r.text
    assert mails(runtime) == []


def test_a_newer_withdrawal_makes_the_old_link_a_friendly_superseded_page(client, session, runtime):
    from vault.mail import drop

    customer = create_customer(session, runtime)
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write")
    grant = {"purpose": "newsletter", "status": "granted", "channel": "web"}
    r = client.post(f"/v1/customers/{customer.id}/consents", json=grant, headers=writer)
    assert r.status_code == 201
    assert drain(Deliverer(runtime)) == 1  # no SMTP: the mail drop
    (path,) = drop.drop_dir(runtime.settings).glob("*.eml")
    token = TOKEN.search(path.read_text()).group(1)
    assert client.get(f"/confirm/{token}").status_code == 200
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={**grant, "status": "withdrawn"},
        headers=writer,
    )
    assert r.status_code == 201
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 409 and "<html" in page.text
    assert "Dieser Bestätigungslink gilt nicht mehr" in page.text
    pressed = client.post(f"/confirm/{token}", data={"confirm": "yes"})
    assert pressed.status_code == 409 and "gilt nicht mehr" in pressed.text
    assert _status(client, auth_headers(session, runtime, "consent:read"), customer.id) == (
        "withdrawn"
    )


def test_a_deliverer_killed_after_the_commit_leaves_the_mail_to_be_sent_once(
    client, session, runtime, smtpd
):
    """The grant committed with its mail; the deliverer that claimed it died before the SMTP
    send. After its lease ran out the next deliverer (the restarted server) sends it, once."""
    from datetime import timedelta

    from vault.db import utcnow
    from vault.mail import delivery

    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    customer = create_customer(session, runtime, email="killed@example.de")
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    )
    assert r.status_code == 201
    with Session(rt.engine) as s:  # claimed, then the process was killed: nothing sent
        (job,) = delivery.claim(
            session=s,
            envelope=rt.envelope,
            worker_id="killed",
            now=utcnow(),
            lease=timedelta(seconds=rt.settings.mail_lease_seconds),
            limit=10,
        )
        s.commit()
    assert drain(Deliverer(rt, worker_id="restarted")) == 0  # still leased
    assert server.messages == []
    later = utcnow() + timedelta(seconds=rt.settings.mail_lease_seconds + 1)
    assert drain(Deliverer(rt, worker_id="restarted", clock=lambda: later)) == 1
    assert drain(Deliverer(rt, worker_id="again", clock=lambda: later)) == 0
    assert server.message_ids() == [f"<{job.id}@tante-emma.example>"]
    token = TOKEN.search(_text(server.messages[0])).group(1)
    assert client.post(f"/confirm/{token}", data={"confirm": "yes"}).status_code == 200


def test_the_button_keeps_the_pages_language(client, session, runtime):
    """Regression: the form posted without the page's ?lang=, so an English page answered in
    German (the language cookie lives under /me)."""
    customer = create_customer(session, runtime)
    session.rollback()
    writer = auth_headers(session, runtime, "consent:write", "consent:confirm")
    token = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    ).json()["confirmation_token"]
    page = client.get(f"/confirm/{token}?lang=en")
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    assert action == f"/confirm/{token}?lang=en"
    # the footer tells what the page stores: no sign-in cookie here, only the language one
    assert set(page.cookies.keys()) == {"vault_lang"}
    assert "signed in" not in page.text and "a cookie that remembers it" in page.text
    r = client.post(action, data={"confirm": "yes"}, headers={"Accept-Language": "de"})
    assert r.status_code == 200 and "Thank you: your consent is confirmed" in r.text
