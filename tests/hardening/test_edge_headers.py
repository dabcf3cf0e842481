"""Issue 10: security headers and Cache-Control on every answer, errors and edge answers too."""

from __future__ import annotations

import uuid

from tests import factories
from tests.selfservice.helpers import mailed_link


def _assert_edge_headers(r, what, *, no_store: bool = True, csp: bytes | None = None) -> None:
    from vault.http import security_headers

    for name, value in security_headers(csp):
        assert r.headers.get(name.decode()) == value.decode(), (what, name)
    assert len(r.headers.get("x-request-id", "")) == 16, what
    if no_store:
        assert "no-store" in r.headers.get("cache-control", ""), (what, r.status_code)


def _every_operation(app) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            filled = path.replace("{purpose}", "newsletter")
            for name in ("customer_id", "webhook_id", "request_uuid"):
                filled = filled.replace("{" + name + "}", str(uuid.uuid4()))
            out.append((method.upper(), filled))
    return out


def test_every_operation_answers_with_the_edge_headers(client, session, runtime):
    everything = factories.auth_headers(
        session,
        runtime,
        "customers:write",
        "consent:write",
        "consent:read",
        "data:read",
        "dsr:execute",
        "selfservice:issue",
        "audit:read",
        "webhooks:manage",
        "admin",
        purposes=list(runtime.policy.purposes),
    )
    statuses = set()
    for method, path in _every_operation(client.app):
        for headers in ({}, everything):  # 401 and the authorised answer (often 404 or 422)
            r = client.request(method, path, headers=headers, json={} if method != "GET" else None)
            statuses.add(r.status_code)
            _assert_edge_headers(r, (method, path))
    assert {200, 401, 404, 422} <= statuses


def test_answers_that_carry_personal_data_are_not_stored(client, session, runtime):
    """The successful answers, one per door that hands out personal data, tokens or secrets."""
    c, secret = factories.create_client(
        session,
        runtime,
        scopes=[
            "customers:write",
            "consent:write",
            "consent:read",
            "data:read",
            "dsr:execute",
            "selfservice:issue",
            "audit:read",
            "admin",
        ],
        purposes=["personalised_offers", "order_fulfilment"],
    )
    h = {"Authorization": f"Bearer {factories.token(runtime, c)}"}
    email = factories.unique_email()
    r = client.post("/v1/customers", json={"attributes": {"email": email}}, headers=h)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    consent = {"purpose": "personalised_offers", "status": "granted", "channel": "web"}
    answers = [
        client.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": c.id, "client_secret": secret},
        ),
        r,
        client.post("/v1/customers/lookup", json={"attribute": "email", "value": email}, headers=h),
        client.post(f"/v1/customers/{cid}/consents", json=consent, headers=h),
        client.get(f"/v1/customers/{cid}/consents", headers=h),
        client.get(f"/v1/customers/{cid}/consents/history", headers=h),
        client.get(
            f"/v1/customers/{cid}/data", params={"purpose": "personalised_offers"}, headers=h
        ),
        client.get(
            "/v1/purposes/personalised_offers/audience",
            params={"contact_channel": "email"},
            headers=h,
        ),
        client.get(f"/v1/customers/{cid}/export", headers=h),
        client.get("/v1/audit/events", params={"customer_id": cid}, headers=h),
        client.get("/v1/audit/events", headers={**h, "accept": "application/x-ndjson"}),
        client.get("/v1/dsr/requests", headers=h),
        client.post("/v1/clients", json={"name": "x", "scopes": ["audit:read"]}, headers=h),
    ]
    link = client.post(f"/v1/customers/{cid}/selfservice-link", headers=h)
    answers.append(link)
    path = mailed_link(runtime, link.json()["mail_id"])
    answers.append(client.get(path, follow_redirects=False))
    for page in ("/me", "/me/consents", "/me/data", "/me/activity", "/me/export", "/me/erase"):
        answers.append(client.get(page))
    for r in answers:
        assert r.status_code in (200, 201, 202, 303), (r.request.url, r.status_code, r.text[:200])
        _assert_edge_headers(r, (r.request.method, r.request.url.path))


def test_error_and_edge_answers_carry_the_headers_too(client, limited):
    answers = {
        "404 unknown path": client.get("/no/such/thing"),
        "404 unknown page": client.get("/me/nothing-here"),
        "405": client.put("/v1/customers"),
        "413": client.post(
            "/v1/customers", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
        ),
        "422": client.get("/v1/purposes/newsletter/audience", params={"attributes": "x" * 5000}),
        "401 page": client.get("/me"),
        "401 link": client.get("/me/login/nope", follow_redirects=False),
        "public": client.get("/v1/purposes"),
        "jwks": client.get("/.well-known/jwks.json"),
        "health": client.get("/healthz"),
        "metrics": client.get("/metrics"),
        "openapi": client.get("/openapi.json"),
    }
    _, tight = limited(token_ip="1/hour", login_failures_ip="1/hour")
    form = {"grant_type": "client_credentials", "client_id": "cv_x", "client_secret": "y"}
    tight.post("/v1/oauth/token", data=form)
    answers["429 api"] = tight.post("/v1/oauth/token", data=form)
    tight.get("/me/login/nope")
    answers["429 page"] = tight.get("/me/login/nope")
    for what, r in answers.items():
        _assert_edge_headers(r, what)
    assert answers["429 api"].status_code == answers["429 page"].status_code == 429
    assert answers["405"].status_code == 405
    assert answers["413"].status_code == 413
    # static files: the headers, and cacheable (they hold no personal data)
    css = client.get("/me/static/style.css")
    assert css.status_code == 200
    _assert_edge_headers(css, "static", no_store=False)
    assert "no-store" not in css.headers.get("cache-control", "")
    missing = client.get("/me/static/nope.css")
    assert missing.status_code == 404
    _assert_edge_headers(missing, "static 404", no_store=False)
    # the API docs: their own CSP on the three pages only, the strict one on their files
    from vault.apidocs import PAGE_CSP

    for path, csp in PAGE_CSP.items():
        _assert_edge_headers(client.get(path), path, csp=csp)
    for path in ("/docs/static/swagger-ui/swagger-ui.css", "/docs/static/nope.js", "/docs/x"):
        r = client.get(path)
        _assert_edge_headers(r, path, no_store=not path.startswith("/docs/static/"))
