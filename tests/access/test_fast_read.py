"""The gated read's fast path (``vault.access.routes.fast_read`` in the edge middleware): it
answers exactly what the route answers, takes only the requests the route would take as they
are, and leaves everything else to the route."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from tests.access.test_routes import PERSONAL, consent, reader
from tests.factories import asgi_scope, auth_headers, create_customer
from vault import app as app_module
from vault.audit.models import AuditEvent

UNKNOWN = "7f1f4b0c-0000-4000-8000-000000000000"


def get(app, path: str, query: str = "", headers: list[tuple[bytes, bytes]] = ()) -> tuple:
    return asgi(app, "GET", path, query, headers)


def asgi(
    app, method: str, path: str, query: str = "", headers=(), body: bytes | None = None
) -> tuple:
    """One request straight into the ASGI app: (status, headers without x-request-id, body,
    whether the framework's router handled it)."""
    if body is not None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    scope = asgi_scope(method, path, [(b"host", b"testserver"), *headers], query.encode())
    sent = []

    messages = [{"type": "http.request", "body": body or b"", "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    head = sorted((k, v) for k, v in start["headers"] if k not in (b"x-request-id",))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], head, body, "route" in scope


@pytest.fixture
def slow_app(runtime, monkeypatch):
    """The same vault without the fast path: every read goes through the route."""

    def no_fast_path(_runtime):
        async def never(scope, authorization, length, receive):
            return None, receive

        return never

    monkeypatch.setattr(app_module, "fast_read", no_fast_path)
    monkeypatch.setattr(app_module, "fast_consent_write", no_fast_path)
    return app_module.create_app(runtime)


@pytest.fixture
def people(client, session, runtime):
    writer = auth_headers(session, runtime, "consent:write", "customers:write")
    granted = create_customer(session, runtime, **PERSONAL)
    withdrawn = create_customer(
        session, runtime, **{**PERSONAL, "email": "max@example.de", "phone": "+49 30 7654321"}
    )
    consent(client, writer, granted.id, "personalised_offers", "granted")
    consent(client, writer, withdrawn.id, "personalised_offers", "granted")
    consent(client, writer, withdrawn.id, "personalised_offers", "withdrawn")
    session.rollback()
    return granted, withdrawn


def _bearer(headers: dict) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", headers["Authorization"].encode())]


def _audited(session) -> int:
    session.rollback()  # a fresh snapshot (SQLite: the last one may outlive its rollback)
    n = session.scalar(select(func.count()).select_from(AuditEvent))
    session.rollback()
    return n


def test_the_fast_path_answers_the_route_s_answers_and_audits_each_read(
    app, slow_app, client, session, runtime, people
):
    granted, withdrawn = people
    ok = _bearer(reader(session, runtime, "personalised_offers"))
    other_purpose = _bearer(reader(session, runtime, "newsletter"))
    wrong_scope = _bearer(
        auth_headers(session, runtime, "consent:read", purposes=["personalised_offers"])
    )
    forged = [(b"authorization", ok[0][1][:-4] + b"AAAA")]
    cases = [
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers", ok),
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers&attributes=email", ok),
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers&attributes=nope", ok),
        (f"/v1/customers/{granted.id}/data", "purpose=no_such_purpose", ok),
        (f"/v1/customers/{granted.id}/data", "", ok),
        (f"/v1/customers/{withdrawn.id}/data", "purpose=personalised_offers", ok),
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers", other_purpose),
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers", wrong_scope),
        (f"/v1/customers/{granted.id}/data", "purpose=personalised_offers", forged),
        (f"/v1/customers/{UNKNOWN}/data", "purpose=personalised_offers", ok),
    ]
    for path, query, headers in cases:
        before = _audited(session)
        fast = get(app, path, query, headers)
        fast_audited = _audited(session) - before
        slow = get(slow_app, path, query, headers)
        slow_audited = _audited(session) - before - fast_audited
        assert fast[3] is False, (query, "the fast path answered")
        assert slow[3] is True
        assert fast[:3] == slow[:3], (path, query, fast[:3], slow[:3])
        assert fast_audited == slow_audited, (path, query)
        if fast[0] == 200:
            assert fast_audited == 1
    statuses = [get(app, p, q, h)[0] for p, q, h in cases]
    assert statuses == [200, 200, 422, 422, 422, 403, 403, 403, 401, 404]


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/v1/customers/{ID}/data", "purpose=personalised_offers", "upper-case id"),
        ("/v1/customers/{id}/data", "purpose=personalised_offers&purpose=newsletter", None),
        ("/v1/customers/{id}/data", "purpose=", None),
        ("/v1/customers/{id}/data", "purpose=personalised_offers&extra=1", None),
        ("/v1/customers/{id}/data", "purpose=" + "p" * 65, None),
        ("/v1/customers/{id}/data", "purpose=personalised_offers", "lower-case scheme"),
        ("/v1/customers/{id}/data", "purpose=personalised_offers", "two headers"),
        ("/v1/customers/{id}/data", "purpose=personalised_offers", "none"),
        ("/v1/customers/not-a-uuid/data", "purpose=personalised_offers", None),
    ],
)
def test_what_the_fast_path_does_not_take_the_route_answers(
    app, slow_app, client, session, runtime, people, path, query, headers
):
    granted, _ = people
    token = reader(session, runtime, "personalised_offers")["Authorization"].encode()
    sent = {
        None: [(b"authorization", token)],
        "upper-case id": [(b"authorization", token)],
        "lower-case scheme": [(b"authorization", b"bearer " + token.split(b" ", 1)[1])],
        "two headers": [(b"authorization", token), (b"authorization", b"Bearer other")],
        "none": [],
    }[headers]
    cid = str(granted.id).upper() if headers == "upper-case id" else str(granted.id)
    path = path.replace("{ID}", cid).replace("{id}", cid)
    fast, slow = get(app, path, query, sent), get(slow_app, path, query, sent)
    assert fast[3] is True, "the route answered"
    assert fast[0] == slow[0] and fast[2] == slow[2]


def test_the_fast_path_decodes_the_query_as_the_route_does(app, client, session, runtime, people):
    granted, _ = people
    ok = _bearer(reader(session, runtime, "personalised_offers"))
    query = urlencode({"purpose": "personalised_offers", "attributes": "email,first_name"})
    status, _, body, routed = get(app, f"/v1/customers/{granted.id}/data", query, ok)
    assert (status, routed) == (200, False)
    assert b'"email"' in body and b'"first_name"' in body and b'"last_name"' not in body
