"""Issue 10: every list route's page size is capped, documented and refused past the cap."""

from __future__ import annotations

import uuid

import pytest

from tests import factories

# Every operation that takes ``limit``: (operation id, path, scope, documented maximum).
LIST_ENDPOINTS = [
    ("list_audit_events", "/v1/audit/events", "audit:read", 1000),
    ("list_clients", "/v1/clients", "admin", 1000),
    ("list_webhooks", "/v1/webhooks", "webhooks:manage", 1000),
    ("list_webhook_deliveries", "/v1/webhooks/{id}/deliveries", "webhooks:manage", 1000),
    ("list_dsr_requests", "/v1/dsr/requests", "dsr:execute", 1000),
    ("get_consent_history", "/v1/customers/{id}/consents/history", "consent:read", 10_000),
]


def test_every_limit_parameter_is_capped_and_documented(app):
    doc = app.openapi()
    found = {}
    for ops in doc["paths"].values():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["name"] == "limit":
                    assert p["schema"]["minimum"] == 1, op["operationId"]
                    assert "refused with 422" in p["description"], op["operationId"]
                    found[op["operationId"]] = p["schema"]["maximum"]
    assert found == {op_id: maximum for op_id, _, _, maximum in LIST_ENDPOINTS}


@pytest.mark.parametrize(("op_id", "path", "scope", "maximum"), LIST_ENDPOINTS)
def test_a_page_larger_than_the_cap_is_refused(
    client, session, runtime, op_id, path, scope, maximum
):
    headers = factories.auth_headers(session, runtime, scope)
    url = path.replace("{id}", str(uuid.uuid4()))
    for bad in (maximum + 1, 10**9, 0, -1):
        r = client.get(url, params={"limit": bad}, headers=headers)
        assert r.status_code == 422, (op_id, bad, r.text)
        body = r.json()
        assert body["error"] == "validation_error"
        assert body["errors"][0]["loc"] == ["query", "limit"]
        assert body["errors"][0]["type"] == ("less_than_equal" if bad > 0 else "greater_than_equal")
    r = client.get(url, params={"limit": maximum}, headers=headers)
    assert r.status_code in (200, 404), (op_id, r.text)  # 404: the made-up webhook or customer
