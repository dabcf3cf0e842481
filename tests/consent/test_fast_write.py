"""The consent write's fast path (``vault.consent.routes.fast_consent_write`` in the edge
middleware): it answers what the route answers and writes what the route writes, takes only
the requests the route would take as they are, and hands everything else to the route with
the body intact."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import func, select

from tests.access.test_fast_read import asgi
from tests.access.test_fast_read import slow_app as slow_app  # a fixture
from tests.factories import auth_headers, create_customer
from vault.consent.models import ConsentEvent

UNKNOWN = "7f1f4b0c-0000-4000-8000-000000000000"
JSON = (b"content-type", b"application/json")


def _events(session) -> int:
    session.rollback()  # a fresh snapshot (SQLite: the last one may outlive its rollback)
    n = session.scalar(select(func.count()).select_from(ConsentEvent))
    session.rollback()
    return n


def _body(**overrides) -> bytes:
    return orjson.dumps(
        {"purpose": "personalised_offers", "status": "granted", "channel": "web", **overrides}
    )


@pytest.fixture
def writer(session, runtime):
    token = auth_headers(session, runtime, "consent:write")["Authorization"].encode()
    return [(b"authorization", token)]


@pytest.fixture
def customers(session, runtime):
    made = [create_customer(session, runtime, email=f"c{i}@example.de") for i in range(2)]
    session.rollback()
    return made


def test_the_fast_path_writes_and_answers_as_the_route_does(
    app, slow_app, client, session, writer, customers
):
    one, two = customers
    cases = [
        ("/v1/customers/{id}/consents", _body(), [JSON]),
        ("/v1/customers/{id}/consents", _body(status="withdrawn"), [JSON]),
        ("/v1/customers/{id}/consents", _body(purpose="nope"), [JSON]),
        ("/v1/customers/{id}/consents", _body(status="maybe"), [JSON]),
        ("/v1/customers/{id}/consents", _body(evidence={"email": "x@y.de"}), [JSON]),
        (f"/v1/customers/{UNKNOWN}/consents", _body(), [JSON]),
        (
            "/v1/customers/{id}/consents",
            _body(),
            [(b"content-type", b"application/json; charset=utf-8")],
        ),
    ]
    for path, body, headers in cases:
        answers = []
        for target, customer in ((app, one), (slow_app, two)):
            before = _events(session)
            status, head, raw, routed = asgi(
                target, "POST", path.replace("{id}", str(customer.id)), "", writer + headers, body
            )
            answers.append((status, [k for k, _ in head], raw, routed, _events(session) - before))
        fast, slow = answers
        assert fast[3] is False and slow[3] is True, (body, "the fast path answered")
        assert fast[0] == slow[0] and fast[1] == slow[1] and fast[4] == slow[4], (body, answers)
        if fast[0] == 201:  # each its own event, receipt and time: the same fields
            assert orjson.loads(fast[2]).keys() == orjson.loads(slow[2]).keys()
            assert fast[4] == 1
        else:
            assert fast[2] == slow[2] and fast[4] == 0
    statuses = [
        asgi(app, "POST", path.replace("{id}", str(one.id)), "", writer + headers, body)[0]
        for path, body, headers in cases
    ]
    assert statuses == [201, 201, 422, 422, 422, 404, 201]


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(
    app, client, session, writer, customers
):
    one, _ = customers
    key = [(b"idempotency-key", b"order-4711")]
    path = f"/v1/customers/{one.id}/consents"
    first = asgi(app, "POST", path, "", [*writer, JSON, *key], _body())
    events = _events(session)
    again = asgi(app, "POST", path, "", [*writer, JSON, *key], _body())
    other = asgi(app, "POST", path, "", [*writer, JSON, *key], _body(status="withdrawn"))
    assert first[0] == again[0] == 201 and not first[3] and not again[3]
    assert orjson.loads(first[2])["event"] == orjson.loads(again[2])["event"]
    assert _events(session) == events  # no second event
    assert other[0] == 422 and b"idempotency" in other[2]


@pytest.mark.parametrize(
    ("case", "want"),
    [
        ("upper-case id", 201),
        ("query string", 201),
        ("not json", 422),
        ("invalid body", 422),
        ("text/plain", 422),
        ("two content types", 201),
        ("no content type", 422),
        ("bad idempotency key", 422),
        ("two idempotency keys", 201),
        ("lower-case scheme", 201),
    ],
)
def test_what_the_fast_path_does_not_take_the_route_answers_with_the_body_intact(
    app, client, session, writer, customers, case, want
):
    one, _ = customers
    cid = str(one.id).upper() if case == "upper-case id" else str(one.id)
    headers = {
        "text/plain": [(b"content-type", b"text/plain")],
        "two content types": [JSON, JSON],
        "no content type": [],
        "bad idempotency key": [JSON, (b"idempotency-key", b"has space")],
        "two idempotency keys": [JSON, (b"idempotency-key", b"a"), (b"idempotency-key", b"b")],
        "lower-case scheme": [JSON],
    }.get(case, [JSON])
    auth = writer
    if case == "lower-case scheme":
        auth = [(b"authorization", b"bearer " + writer[0][1].split(b" ", 1)[1])]
    body = {"not json": b"{purpose", "invalid body": _body(status=None)}.get(case, _body())
    query = "x=1" if case == "query string" else ""
    before = _events(session)
    status, _, raw, routed = asgi(
        app, "POST", f"/v1/customers/{cid}/consents", query, auth + headers, body
    )
    assert routed is True, "the route answered"
    assert status == want, raw
    assert _events(session) - before == (1 if want == 201 else 0)
