import base64

import pytest

from tests.factories import auth_headers, create_client


@pytest.fixture
def registered(session, runtime):
    return create_client(session, runtime, scopes=["customers:write", "consent:read"])


def test_token_with_form_body(client, registered):
    c, secret = registered
    r = client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": c.id, "client_secret": secret},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert set(body["scope"].split()) == {"customers:write", "consent:read"}
    lookup = client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "x@example.de"},
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert lookup.status_code == 404


def test_token_with_http_basic_and_narrowed_scope(client, registered):
    c, secret = registered
    basic = base64.b64encode(f"{c.id}:{secret}".encode()).decode()
    r = client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "consent:read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200 and r.json()["scope"] == "consent:read"
    tok = r.json()["access_token"]
    lookup = client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "x@example.de"},
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert lookup.status_code == 403


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"grant_type": "client_credentials", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "password", "client_secret": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "admin"}, 400, "invalid_scope"),
    ],
)
def test_token_errors(client, registered, data, status, code):
    c, secret = registered
    data = {"client_id": c.id, "client_secret": secret, **data}
    r = client.post("/v1/oauth/token", data=data)
    assert r.status_code == status and r.json()["error"] == code
    assert secret not in r.text


def test_unknown_client_is_401(client):
    r = client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "cv_nope", "client_secret": "x"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_secret_stored_only_as_slow_hash(registered):
    c, secret = registered
    assert secret not in c.secret_hash and c.secret_hash.startswith("$argon2id$")


def test_create_client_via_api_needs_admin(client, session, runtime):
    body = {"name": "Audit desk", "scopes": ["audit:read"], "purposes": ["order_fulfilment"]}
    assert client.post("/v1/clients", json=body).status_code == 401
    r = client.post("/v1/clients", json=body, headers=auth_headers(session, runtime, "data:read"))
    assert r.status_code == 403
    admin = auth_headers(session, runtime, "admin")
    r = client.post("/v1/clients", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["client_id"].startswith("cv_") and len(r.json()["client_secret"]) > 30
    bad = client.post("/v1/clients", json={**body, "purposes": ["mind_reading"]}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"] == "unknown_purpose"
    bad = client.post("/v1/clients", json={**body, "scopes": ["root"]}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_scope"


def test_jwks_serves_public_key_only(client, runtime):
    r = client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    key = next(k for k in r.json()["keys"] if k["kid"] == runtime.signer.kid)
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["kid"] == runtime.signer.kid
    assert all("d" not in k for k in r.json()["keys"])


# --- issue 17 item 10: the token request is form-encoded ---------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"grant_type": "client_credentials", "client_id": "cv_x", "client_secret": "s"}},
        {"content": b"grant_type=client_credentials", "headers": {"content-type": "text/plain"}},
        {"content": b""},
    ],
    ids=["json", "text", "no-content-type"],
)
def test_a_token_request_that_is_not_form_encoded_gets_an_oauth_error(client, kwargs):
    r = client.post("/v1/oauth/token", **kwargs)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_request"
    assert "application/x-www-form-urlencoded" in body["detail"]
    assert "errors" not in body and '"s"' not in r.text


def test_a_json_token_request_with_a_right_secret_still_gets_no_token(client, session, runtime):
    c, secret = create_client(session, runtime, scopes=["audit:read"])
    r = client.post(
        "/v1/oauth/token",
        json={"grant_type": "client_credentials", "client_id": c.id, "client_secret": secret},
    )
    assert r.status_code == 400 and "access_token" not in r.text and secret not in r.text
    multipart = client.post(
        "/v1/oauth/token",
        files={"grant_type": (None, "client_credentials")},
        data={"client_id": c.id, "client_secret": secret},
    )
    assert multipart.status_code == 200, multipart.text
