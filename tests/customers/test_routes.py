import pytest
from sqlalchemy import func, select

from tests.factories import auth_headers, create_customer, unique_email
from vault.customers.models import BlindIndex, Customer, CustomerValue


@pytest.fixture
def writer(session, runtime):
    return auth_headers(session, runtime, "customers:write")


def _counts(session):
    counts = tuple(
        session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (Customer, CustomerValue, BlindIndex)
    )
    session.rollback()
    return counts


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/customers"),
        ("patch", "/v1/customers/00000000-0000-0000-0000-000000000001"),
        ("post", "/v1/customers/lookup"),
    ],
)
def test_customer_routes_need_token_and_scope(client, session, runtime, method, path):
    body = {"attributes": {}} if "lookup" not in path else {"attribute": "email", "value": "x"}
    r = client.request(method, path, json=body)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    wrong = auth_headers(session, runtime, "consent:read")
    r = client.request(method, path, json=body, headers=wrong)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_create_and_lookup(client, writer, session):
    r = client.post(
        "/v1/customers",
        json={
            "attributes": {"email": "Alice.Mueller@Example.de", "last_name": "Müller"},
            "external_id": "CRM-1",
        },
        headers=writer,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["attributes"] == ["email", "last_name"]
    assert "Müller" not in r.text and "alice" not in r.text.lower()
    r = client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "Alice.Mueller@Example.de "},
        headers=writer,
    )
    assert r.status_code == 200 and r.json() == {"id": body["id"]}
    r = client.post(
        "/v1/customers/lookup", json={"attribute": "external_id", "value": "CRM-1"}, headers=writer
    )
    assert r.json() == {"id": body["id"]}
    r = client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "nobody@example.de"},
        headers=writer,
    )
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"
    assert "nobody" not in r.text


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({"email": "ok@example.de", "loyalty_points": "many"}, "loyalty_points"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "ok@example.de", "phone": "12"}, "phone"),
        ({"email": "ok@example.de", "birth_date": "31.12.1980"}, "birth_date"),
        ({"email": "ok@example.de", "gender": "robot"}, "gender"),
        ({"email": "ok@example.de", "postal_code": "1011"}, "postal_code"),
        ({"email": "ok@example.de", "country": "XX"}, "country"),
        ({"email": "ok@example.de", "newsletter_html": "yes"}, "newsletter_html"),
        ({"email": None}, "email"),
    ],
)
def test_bad_values_are_422_naming_the_attribute_and_write_nothing(
    client, writer, session, attributes, named
):
    before = _counts(session)
    r = client.post("/v1/customers", json={"attributes": attributes}, headers=writer)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["attribute"] == named and named in body["detail"]
    assert body["error"] == "invalid_attribute_value"  # unknown names: test_characters.py
    for value in attributes.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in r.text  # values are never echoed
    assert _counts(session) == before


def test_rectify_sets_and_removes(client, writer, session, runtime):
    c = create_customer(session, runtime, phone="+49 30 1234567")
    r = client.patch(
        f"/v1/customers/{c.id}",
        json={"attributes": {"phone": None, "city": "Köln"}},
        headers=writer,
    )
    assert r.status_code == 200, r.text
    assert "phone" not in r.json()["attributes"] and "city" in r.json()["attributes"]
    r = client.post(
        "/v1/customers/lookup", json={"attribute": "phone", "value": "+49301234567"}, headers=writer
    )
    assert r.status_code == 404


def test_rectify_bad_value_changes_nothing(client, writer, session, runtime):
    c = create_customer(session, runtime, city="Bonn")
    before = _counts(session)
    r = client.patch(
        f"/v1/customers/{c.id}",
        json={"attributes": {"city": "Köln", "email": "broken"}},
        headers=writer,
    )
    assert r.status_code == 422 and r.json()["attribute"] == "email"
    assert _counts(session) == before


def test_rectify_unknown_customer_is_404(client, writer):
    r = client.patch(
        "/v1/customers/7f1f4b0c-0000-4000-8000-000000000000",
        json={"attributes": {"city": "Köln"}},
        headers=writer,
    )
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"


def test_duplicate_email_is_409(client, writer):
    email = unique_email()
    assert (
        client.post(
            "/v1/customers", json={"attributes": {"email": email}}, headers=writer
        ).status_code
        == 201
    )
    r = client.post("/v1/customers", json={"attributes": {"email": email.upper()}}, headers=writer)
    assert r.status_code == 409 and r.json() == {
        "error": "duplicate_value",
        "detail": "Another customer already has this email.",
        "attribute": "email",
    }


def test_malformed_json_is_422_with_code(client, writer):
    r = client.post(
        "/v1/customers",
        content=b'{"attributes": {"email": "secret@example.de"',
        headers={**writer, "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert "secret@example.de" not in r.text


def test_body_that_is_not_text_is_422_not_400(client, writer):
    """Found by fuzzing: bytes that are not UTF-8 got FastAPI's undocumented 400."""
    r = client.post(
        "/v1/customers",
        content=b'{"attributes": {"email": "\xff\xfe secret@example.de"}}',
        headers={**writer, "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert "secret" not in r.text


def test_body_too_large_is_413(client, writer):
    r = client.post(
        "/v1/customers",
        content=b'{"attributes": {"city": "' + b"x" * 2_000_000 + b'"}}',
        headers={**writer, "content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_writes_and_lookups_are_audited_without_values(client, writer, session):
    from vault.audit.models import AuditEvent

    r = client.post(
        "/v1/customers",
        json={"attributes": {"email": "audit.probe@example.de", "last_name": "Quastenflosser"}},
        headers=writer,
    )
    cid = r.json()["id"]
    client.patch(f"/v1/customers/{cid}", json={"attributes": {"last_name": None}}, headers=writer)
    client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "audit.probe@example.de"},
        headers=writer,
    )
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    session.rollback()
    mine = [r for r in rows if r.customer_id is not None and str(r.customer_id) == cid]
    assert [(r.action, r.attributes) for r in mine] == [
        ("customer.created", "email,last_name"),
        ("customer.rectified", "last_name"),
        ("customer.lookup", "email"),
    ]
    assert all(r.actor_type == "client" for r in mine)
    dump = " ".join(str(r.model_dump()) for r in rows).lower()
    assert "audit.probe" not in dump and "quastenflosser" not in dump


def test_unknown_top_level_keys_are_422_and_create_nothing(client, writer, session):
    """``{"email": …}`` without ``attributes`` is a mistake, not an empty customer."""
    before = _counts(session)
    address = unique_email()
    r = client.post("/v1/customers", json={"email": address}, headers=writer)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["errors"][0]["type"] == "extra_forbidden"
    assert address not in r.text  # the value is never echoed
    assert _counts(session) == before
