"""Request tracking: deadlines (Art. 12(3)), extensions with a reason, overdue lists."""

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tests.dsr.helpers import audit_actions, customer_with_data, dsr
from vault.cli import app as cli
from vault.dsr.requests import add_months, due_at


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), 1, datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), 1, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), 1, datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2026, 3, 31, tzinfo=UTC), 1, datetime(2026, 4, 30, tzinfo=UTC)),
        (datetime(2026, 5, 10, tzinfo=UTC), 0, datetime(2026, 5, 10, tzinfo=UTC)),
    ],
)
def test_add_months_clamps_the_day(start, months, expected):
    assert add_months(start, months) == expected


def test_due_at_is_one_month_plus_extension():
    received = datetime(2026, 1, 31, tzinfo=UTC)
    assert due_at(received) == datetime(2026, 2, 28, tzinfo=UTC)
    assert due_at(received, 2) == datetime(2026, 4, 30, tzinfo=UTC)


def _create(client, headers, cid, kind, days_ago=0):
    received = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    r = client.post(
        "/v1/dsr/requests",
        json={"customer_id": str(cid), "kind": kind, "received_at": received},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }


def test_overdue_extension_and_closing(client, session, runtime, env):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    late = _create(client, staff, customer.id, "access", days_ago=40)
    fresh = _create(client, staff, customer.id, "rectification", days_ago=2)
    received = datetime.fromisoformat(late["received_at"])
    assert datetime.fromisoformat(late["due_at"]) == add_months(received, 1)
    assert late["overdue"] is True and fresh["overdue"] is False

    r = client.get("/v1/dsr/requests", params={"overdue": "true"}, headers=staff)
    assert [x["id"] for x in r.json()["requests"]] == [late["id"]]
    r = client.get("/v1/dsr/requests", params={"status": "open"}, headers=staff)
    assert [x["id"] for x in r.json()["requests"]] == [late["id"], fresh["id"]]
    r = client.get("/v1/dsr/requests", params={"kind": "rectification"}, headers=staff)
    assert [x["id"] for x in r.json()["requests"]] == [fresh["id"]]

    result = CliRunner().invoke(cli, ["dsr", "list", "--overdue"], env=env)
    assert result.exit_code == 1, result.output
    assert late["id"] in result.output and fresh["id"] not in result.output
    assert "OVERDUE" in result.output

    url = f"/v1/dsr/requests/{late['id']}/extension"
    r = client.post(url, json={"months": 2}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "extension_reason_required"
    r = client.post(url, json={"months": 2, "reason": "Records in the archive"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"  # a code, not text
    r = client.post(url, json={"months": 3, "reason": "number_of_requests"}, headers=staff)
    assert r.status_code == 422  # validation: at most 2
    r = client.post(url, json={"months": 1, "reason": "number_of_requests"}, headers=staff)
    assert r.status_code == 200, r.text
    assert r.json()["extension_months"] == 1 and r.json()["overdue"] is False
    assert datetime.fromisoformat(r.json()["due_at"]) == add_months(received, 2)
    r = client.post(url, json={"months": 2, "reason": "complexity"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "extension_too_long"
    r = client.post(url, json={"months": 1, "reason": "complexity"}, headers=staff)
    assert r.status_code == 200 and r.json()["extension_reason"] == "complexity"
    assert datetime.fromisoformat(r.json()["due_at"]) == add_months(received, 3)

    result = CliRunner().invoke(cli, ["dsr", "list", "--overdue"], env=env)
    assert result.exit_code == 0 and late["id"] not in result.output

    close = f"/v1/dsr/requests/{fresh['id']}/close"
    r = client.post(close, json={"status": "rejected"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "rejection_reason_required"
    r = client.post(close, json={"status": "completed"}, headers=staff)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert r.json()["handled_by"].startswith("client:cv_")
    r = client.post(close, json={"status": "completed"}, headers=staff)
    assert r.status_code == 409 and r.json()["error"] == "dsr_request_closed"
    r = client.post(
        f"/v1/dsr/requests/{fresh['id']}/extension",
        json={"months": 1, "reason": "complexity"},
        headers=staff,
    )
    assert r.status_code == 409
    actions = audit_actions(runtime, customer.id)
    assert actions.count("dsr.request_received") == 2
    assert actions.count("dsr.request_extended") == 2
    assert "dsr.request_closed" in actions


def test_request_validation(client, session, runtime):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    r = client.post(
        "/v1/dsr/requests",
        json={"customer_id": "7f1f4b0c-0000-4000-8000-000000000000", "kind": "access"},
        headers=staff,
    )
    assert r.status_code == 404
    r = client.post(
        "/v1/dsr/requests", json={"customer_id": str(customer.id), "kind": "gossip"}, headers=staff
    )
    assert r.status_code == 422
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = client.post(
        "/v1/dsr/requests",
        json={"customer_id": str(customer.id), "kind": "access", "received_at": future},
        headers=staff,
    )
    assert r.status_code == 422 and r.json()["error"] == "received_at_in_future"
    r = client.get("/v1/dsr/requests/7f1f4b0c-0000-4000-8000-000000000000", headers=staff)
    assert r.status_code == 404 and r.json()["error"] == "dsr_request_not_found"


def test_listing_pages_through_a_cursor(client, session, runtime):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    made = [_create(client, staff, customer.id, "access", days_ago=d)["id"] for d in (5, 4, 3)]
    r = client.get("/v1/dsr/requests", params={"limit": 2}, headers=staff)
    first = r.json()
    assert [x["id"] for x in first["requests"]] == made[:2] and first["next_cursor"]
    r = client.get(
        "/v1/dsr/requests", params={"limit": 2, "cursor": first["next_cursor"]}, headers=staff
    )
    assert [x["id"] for x in r.json()["requests"]] == made[2:]
    assert r.json()["next_cursor"] is None
