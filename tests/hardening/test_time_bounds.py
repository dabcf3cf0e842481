"""Bounds on time: every timestamp a request carries (body fields, query parameters, import
lines, the audit cursor) lies between 1900 and 2100, else 422, never a 500.

Before the shared ``vault.db.Instant`` type, ``0001-01-01T00:00:00+01:00`` (year 0 in UTC) and
``9999-12-31T23:59:59-01:00`` (year 10000 in UTC) broke the conversion to UTC on the way into
the database, and an audit cursor above 2**63 - 1 broke the 64-bit bind: 500s.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.factories import auth_headers, create_customer
from vault.consent import service as consent_service
from vault.db import EARLIEST, LATEST, OUT_OF_RANGE
from vault.errors import InvalidRequest

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+01:00",  # year 0 once in UTC
    "9999-12-31T23:59:59-01:00",  # year 10000 once in UTC
    "1899-12-31T23:59:59+00:00",
    "1900-01-01T00:30:00+01:00",  # 1899 in UTC
    "2101-01-01T00:00:00+00:00",
]


@pytest.fixture
def staff(session, runtime):
    return auth_headers(
        session, runtime, "consent:write", "consent:read", "dsr:execute", "audit:read"
    )


@pytest.fixture
def cid(session, runtime):
    return str(create_customer(session, runtime).id)


def _out_of_range(r) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert [e["type"] for e in body["errors"]] == [OUT_OF_RANGE]


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_consent_occurred_at_out_of_range_is_422(client, staff, cid, when):
    body = {"purpose": "personalised_offers", "status": "granted", "channel": "web"}
    r = client.post(
        f"/v1/customers/{cid}/consents",
        json={**body, "occurred_at": when, "late_import": True},
        headers=staff,
    )
    _out_of_range(r)


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_consents_as_of_out_of_range_is_422(client, staff, cid, when):
    r = client.get(f"/v1/customers/{cid}/consents", params={"as_of": when}, headers=staff)
    _out_of_range(r)


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_dsr_received_at_out_of_range_is_422(client, staff, cid, when):
    r = client.post(
        "/v1/dsr/requests",
        json={"customer_id": cid, "kind": "access", "received_at": when},
        headers=staff,
    )
    _out_of_range(r)


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_audit_since_and_until_out_of_range_are_422(client, staff, param, when):
    _out_of_range(client.get("/v1/audit/events", params={param: when}, headers=staff))


def test_the_bounds_themselves_are_accepted(client, staff, cid):
    first, last = EARLIEST.isoformat(), (LATEST - timedelta(seconds=1)).isoformat()
    r = client.get("/v1/audit/events", params={"since": first, "until": last}, headers=staff)
    assert r.status_code == 200, r.text
    r = client.get(f"/v1/customers/{cid}/consents", params={"as_of": first}, headers=staff)
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/dsr/requests",
        json={"customer_id": cid, "kind": "access", "received_at": first},
        headers=staff,
    )
    assert r.status_code == 201, r.text


def test_audit_since_without_a_time_zone_is_422(client, staff):
    r = client.get("/v1/audit/events", params={"since": "2026-01-01T00:00:00"}, headers=staff)
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "timezone_aware"


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "raw", [f"a1:{2**63}", f"a1:{2**64 + 5}", "a1:" + "9" * 40, "a1:\u0661\u0662"]
)
def test_audit_cursor_beyond_64_bits_is_422(client, staff, raw):
    r = client.get("/v1/audit/events", params={"cursor": _cursor(raw)}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "invalid_cursor", r.text


def test_the_largest_audit_cursor_is_an_empty_page(client, staff):
    r = client.get("/v1/audit/events", params={"cursor": _cursor(f"a1:{2**63 - 1}")}, headers=staff)
    assert r.status_code == 200 and r.json() == {"events": [], "next_cursor": None}


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_import_line_with_occurred_at_out_of_range_is_rejected(session, runtime, client, when):
    headers = auth_headers(session, runtime, "customers:write", "consent:write")
    line = {
        "attributes": {"email": "zeit@example.de"},
        "consents": [
            {
                "purpose": "personalised_offers",
                "status": "granted",
                "occurred_at": when,
                "late_import": True,
            }
        ],
    }
    r = client.post(
        "/v1/customers/import",
        content=orjson.dumps(line) + b"\n",
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 0 and report["rejected"] == 1
    assert report["errors"][0]["error"] == OUT_OF_RANGE


def test_the_service_refuses_out_of_range_too():
    """Doors that do not go through the API's type (the CLI, other services) meet the same
    bound in ``check_occurred_at``."""
    with pytest.raises(InvalidRequest) as err:
        consent_service.check_occurred_at(
            datetime(1850, 1, 1, tzinfo=UTC),
            now=datetime.now(UTC),
            backdate_days=30,
            late_import=True,
        )
    assert err.value.code == OUT_OF_RANGE
