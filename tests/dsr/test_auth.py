"""Every DSR route: 401 without a token, 403 with the wrong scope."""

import pytest

from tests.factories import auth_headers

CID = "7f1f4b0c-0000-4000-8000-000000000000"
RID = "1b6f0c2e-0000-4000-8000-000000000000"
ROUTES = [
    ("GET", f"/v1/customers/{CID}/export", None),
    ("DELETE", f"/v1/customers/{CID}", None),
    ("POST", f"/v1/customers/{CID}/legal-hold", {"reason": "litigation"}),
    ("DELETE", f"/v1/customers/{CID}/legal-hold", {"reason": "litigation_concluded"}),
    ("POST", f"/v1/customers/{CID}/restriction", None),
    ("DELETE", f"/v1/customers/{CID}/restriction", None),
    ("POST", f"/v1/customers/{CID}/objection", {"scope": "direct_marketing"}),
    ("DELETE", f"/v1/customers/{CID}/objection", {"scope": "direct_marketing"}),
    ("GET", "/v1/dsr/requests", None),
    ("POST", "/v1/dsr/requests", {"customer_id": CID, "kind": "access"}),
    ("GET", f"/v1/dsr/requests/{RID}", None),
    ("POST", f"/v1/dsr/requests/{RID}/extension", {"months": 1, "reason": "complexity"}),
    ("POST", f"/v1/dsr/requests/{RID}/close", {"status": "completed"}),
    ("GET", "/v1/records-of-processing", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_needs_a_token_and_the_scope(client, session, runtime, method, path, body):
    r = client.request(method, path, json=body)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    wrong = auth_headers(
        session,
        runtime,
        "data:read",
        "customers:write",
        "consent:read",
        "consent:write",
        "selfservice:issue",
        purposes=["newsletter"],
    )
    r = client.request(method, path, json=body, headers=wrong)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    # the right scope gets past the door (to 404 for the unknown ids here)
    right = auth_headers(session, runtime, "dsr:execute")
    r = client.request(method, path, json=body, headers=right)
    assert r.status_code in (200, 404), r.text


def test_audit_read_may_read_the_record_of_processing_but_nothing_else(client, session, runtime):
    auditor = auth_headers(session, runtime, "audit:read")
    assert client.get("/v1/records-of-processing", headers=auditor).status_code == 200
    for method, path, body in ROUTES[:-1]:
        r = client.request(method, path, json=body, headers=auditor)
        assert r.status_code == 403, (method, path)
