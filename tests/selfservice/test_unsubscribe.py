"""One-click unsubscribe (RFC 8058): the audience export's ``unsubscribe_url`` withdraws with
one POST, its GET page changes nothing, forged and altered tokens are refused."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest
from sqlalchemy import func, select

from tests.factories import auth_headers, create_customer, record_consent
from vault.consent.models import ConsentEvent
from vault.crypto.unsubscribe import UnsubscribeTokens
from vault.events.models import OutboxEvent

PURPOSE = "personalised_offers"  # consent, no double opt-in, contact_channels email + push
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
HTML = {"Accept": "text/html,application/xhtml+xml"}


def _events(session, customer_id) -> list[ConsentEvent]:
    rows = (
        session.execute(
            select(ConsentEvent)
            .where(ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.seq)
        )
        .scalars()
        .all()
    )
    session.rollback()
    return list(rows)


def _withdrawn_webhooks(session, customer_id) -> int:
    n = session.execute(
        select(func.count())
        .select_from(OutboxEvent)
        .where(OutboxEvent.customer_id == customer_id, OutboxEvent.type == "consent.withdrawn")
    ).scalar_one()
    session.rollback()
    return n


def _export(client, headers, purpose=PURPOSE, contact_channel="email") -> dict[str, dict]:
    # the unsubscribe link is for the e-mail: the export of e-mail contacts (issue 18)
    params = {"contact_channel": contact_channel} if contact_channel else {}
    r = client.get(f"/v1/purposes/{purpose}/audience", headers=headers, params=params)
    assert r.status_code == 200, r.text[:300]
    return {d["customer_id"]: d for d in map(orjson.loads, r.content.splitlines())}


@pytest.fixture
def granted(session, runtime):
    customer = create_customer(session, runtime)
    record_consent(session, runtime, customer.id, PURPOSE)
    return customer


@pytest.fixture
def reader_headers(session, runtime):
    return auth_headers(session, runtime, "data:read", purposes=[PURPOSE, "analytics"])


def _path(url: str) -> str:
    assert url.startswith("http://testserver/unsubscribe/"), url
    return url.removeprefix("http://testserver")


def test_the_exported_url_withdraws_with_one_post(
    client, session, runtime, granted, reader_headers
):
    rows = _export(client, reader_headers)
    row = rows[str(granted.id)]
    url = row["unsubscribe_url"]
    token = url.rsplit("/", 1)[1]
    # no customer data in the URL: neither the id (in any spelling) nor an attribute
    for clear in (str(granted.id), granted.id.hex, str(granted.id).upper()):
        assert clear not in url
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert granted.id.bytes not in raw
    # unique per customer and stable across exports
    assert len({d["unsubscribe_url"] for d in rows.values()}) == len(rows)
    assert _export(client, reader_headers)[str(granted.id)]["unsubscribe_url"] == url
    read = client.get(
        f"/v1/customers/{granted.id}/data", params={"purpose": PURPOSE}, headers=reader_headers
    )
    assert read.status_code == 200
    before = _events(session, granted.id)

    r = client.post(
        _path(url), data=ONE_CLICK, headers={"User-Agent": "Gmail-List-Unsubscribe/1.0"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "unsubscribed"}
    assert r.headers["cache-control"] == "no-store"

    read = client.get(
        f"/v1/customers/{granted.id}/data", params={"purpose": PURPOSE}, headers=reader_headers
    )
    assert read.status_code == 403 and read.json()["error"] == "consent_withdrawn"
    events = _events(session, granted.id)
    assert len(events) == len(before) + 1
    event = events[-1]
    assert (event.status, event.channel, event.method) == (
        "withdrawn",
        "email",
        "one_click_unsubscribe",
    )
    assert event.actor == "customer"
    assert event.recorded_by == f"one_click:{granted.id}"
    assert event.evidence["user_agent"] == "Gmail-List-Unsubscribe/1.0"
    assert set(event.evidence) <= {"ip", "user_agent", "language"}
    assert "gpc" not in event.evidence
    assert _withdrawn_webhooks(session, granted.id) == 1
    assert str(granted.id) not in _export(client, reader_headers)


def test_a_second_post_is_200_and_records_nothing(
    client, session, runtime, granted, reader_headers
):
    path = _path(_export(client, reader_headers)[str(granted.id)]["unsubscribe_url"])
    assert client.post(path, data=ONE_CLICK).status_code == 200
    after_first = _events(session, granted.id)
    r = client.post(path, data=ONE_CLICK)
    assert r.status_code == 200 and r.json() == {"status": "unsubscribed"}
    assert _events(session, granted.id) == after_first
    assert _withdrawn_webhooks(session, granted.id) == 1


def test_a_refused_consent_is_already_unsubscribed(client, session, runtime, granted):
    record_consent(session, runtime, granted.id, PURPOSE, status="refused")
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    before = _events(session, granted.id)
    assert client.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    assert _events(session, granted.id) == before
    page = client.get(f"/unsubscribe/{token}", params={"lang": "en"})
    assert "You are unsubscribed" in page.text and "<form" not in page.text


def test_get_shows_the_button_and_changes_nothing(
    client, session, runtime, granted, reader_headers
):
    path = _path(_export(client, reader_headers)[str(granted.id)]["unsubscribe_url"])
    before = _events(session, granted.id)
    for lang, title, button in (
        ("de", "Abmelden", "Abmelden"),
        ("en", "Unsubscribe", "Unsubscribe"),
    ):
        r = client.get(path, params={"lang": lang})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        assert f"<h1>{title}</h1>" in r.text
        assert f'<form method="post" action="{path}?lang={lang}">' in r.text
        assert 'name="List-Unsubscribe" value="One-Click"' in r.text
        assert f">{button}</button>" in r.text
        purpose = runtime.policy.purposes[PURPOSE]
        assert purpose.title.get(lang) in r.text
        assert "set-cookie" not in r.headers  # not even the language (the form keeps ?lang=)
        assert "one cookie to keep you signed in" not in r.text
        # no customer data on a page anyone holding the link can open
        assert "Erika" not in r.text and "Mustermann" not in r.text and "@" not in r.text
    assert _events(session, granted.id) == before
    read = client.get(
        f"/v1/customers/{granted.id}/data", params={"purpose": PURPOSE}, headers=reader_headers
    )
    assert read.status_code == 200


def test_the_page_button_withdraws_and_answers_a_page(client, session, runtime, granted):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    r = client.post(f"/unsubscribe/{token}?lang=de", data=ONE_CLICK, headers=HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>Sie sind abgemeldet</h1>" in r.text
    assert "„Persönliche Angebote“" in r.text
    assert _events(session, granted.id)[-1].evidence["language"] == "de"


def test_multipart_one_click_is_accepted_too(client, session, runtime, granted):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    r = client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200, r.text
    assert _events(session, granted.id)[-1].method == "one_click_unsubscribe"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {},
        {"data": {"List-Unsubscribe": "one-click"}},
        {"data": {"unsubscribe": "One-Click"}},
        {"json": {"List-Unsubscribe": "One-Click"}},
        {"content": b"List-Unsubscribe=One-Click", "headers": {"content-type": "text/plain"}},
        {"content": b"\xff\xfe", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {
            "content": b"--x\r\nbroken",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
    ],
)
def test_a_post_without_one_click_changes_nothing(
    client, session, runtime, granted, request_kwargs
):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    before = _events(session, granted.id)
    r = client.post(f"/unsubscribe/{token}", **request_kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "one_click_required"
    assert _events(session, granted.id) == before


def test_a_post_without_one_click_from_a_browser_gets_a_page(client, runtime, granted):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    r = client.post(f"/unsubscribe/{token}?lang=en", data={}, headers=HTML)
    assert r.status_code == 422
    assert "<h1>Nothing was changed</h1>" in r.text


def _tampered(token: str) -> list[str]:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    out = []
    for i in (0, 1, 17, len(raw) - 1):
        changed = bytearray(raw)
        changed[i] ^= 0x20
        out.append(base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode())
    return out


def test_forged_and_tampered_tokens_are_refused(client, session, runtime, granted):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    forged = UnsubscribeTokens(bytes(32)).make(granted.id, PURPOSE)  # another key
    before = _events(session, granted.id)
    for bad in [forged, token[:-2], token + "A", "x", "A" * 300, *_tampered(token)]:
        r = client.post(f"/unsubscribe/{bad}", data=ONE_CLICK)
        assert r.status_code == 404, (bad, r.text)
        assert r.json()["error"] == "unsubscribe_link_invalid"
        assert client.get(f"/unsubscribe/{bad}").status_code == 404
    page = client.get(f"/unsubscribe/{forged}", params={"lang": "en"}, headers=HTML)
    assert page.status_code == 404 and "<h1>This link is not valid</h1>" in page.text
    assert _events(session, granted.id) == before


def test_the_token_is_checked_before_the_body_is_read(client, runtime, granted):
    forged = UnsubscribeTokens(bytes(32)).make(granted.id, PURPOSE)
    r = client.post(
        f"/unsubscribe/{forged}",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 404 and r.json()["error"] == "unsubscribe_link_invalid"


def test_a_token_for_a_customer_that_never_existed_or_a_purpose_not_on_consent_is_404(
    client, runtime
):
    tokens = UnsubscribeTokens(runtime.envelope.keys.index_key)
    for token in (
        tokens.make(uuid.uuid4(), PURPOSE),
        tokens.make(uuid.uuid4(), "order_fulfilment"),  # a contract: nothing to withdraw
        tokens.make(uuid.uuid4(), "no_such_purpose"),
    ):
        r = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
        assert r.status_code == 404 and r.json()["error"] == "unsubscribe_link_invalid"
        assert client.get(f"/unsubscribe/{token}").status_code == 404


def test_an_erased_customer_is_410(client, session, runtime, granted):
    token = UnsubscribeTokens(runtime.envelope.keys.index_key).make(granted.id, PURPOSE)
    dsr = auth_headers(session, runtime, "dsr:execute")
    assert client.delete(f"/v1/customers/{granted.id}", headers=dsr).status_code == 204
    r = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    page = client.get(f"/unsubscribe/{token}", params={"lang": "en"}, headers=HTML)
    assert page.status_code == 410 and "<h1>Your data has been erased</h1>" in page.text
    assert (
        client.post(f"/unsubscribe/{token}?lang=en", data=ONE_CLICK, headers=HTML).status_code
        == 410
    )


def test_purposes_without_email_get_no_unsubscribe_url(client, session, runtime, reader_headers):
    customer = create_customer(session, runtime)
    rows = _export(client, reader_headers, "analytics", None)  # legitimate interest, no contact
    assert rows[str(customer.id)].keys() == {"customer_id", "attributes"}
