"""Token attack matrix for access tokens (python-jose behind vault.crypto.signing)."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.factories import create_client, token
from tests.selfservice.helpers import mailed_link
from vault.auth.models import Client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    h = _b64(json.dumps(header).encode())
    c = _b64(json.dumps(claims).encode())
    return f"{h}.{c}.{_b64(signature)}"


def _claims(runtime, client, **overrides):
    now = int(time.time())
    base = {
        "iss": runtime.settings.issuer,
        "aud": runtime.settings.token_audience,
        "sub": client.id,
        "client_id": client.id,
        "scope": "customers:write",
        "iat": now,
        "exp": now + 300,
        "jti": "x",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def app_client(session, runtime):
    c, _ = create_client(session, runtime, scopes=["customers:write"])
    return c


def _lookup(client, tok):
    return client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "a@example.de"},
        headers={"Authorization": f"Bearer {tok}"},
    )


def test_valid_token_passes(client, runtime, app_client):
    assert _lookup(client, token(runtime, app_client)).status_code == 404  # authorised; no match


def test_no_token_and_wrong_scheme(client, runtime, app_client):
    assert client.post("/v1/customers/lookup", json={}).status_code == 401
    r = client.post(
        "/v1/customers/lookup",
        json={"attribute": "email", "value": "a@example.de"},
        headers={"Authorization": f"Basic {token(runtime, app_client)}"},
    )
    assert r.status_code == 401


def _signed(runtime, claims, typ="at+jwt", **headers):
    from jose import jwt

    return jwt.encode(
        claims,
        runtime.signer._private_pem,
        algorithm="ES256",
        headers={"typ": typ, "kid": runtime.signer.kid, **headers},
    )


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_aud",
        "wrong_iss",
        "missing_exp",
        "missing_aud",
        "missing_iss",
        "wrong_typ",
        "receipt_typ",
        "jku_header",
        "jwk_header",
        "x5u_header",
        "wrong_kid",
        "iat_in_the_future",
        "lifetime_beyond_the_maximum",
        "list_valued_aud",
    ],
)
def test_properly_signed_but_unacceptable_tokens_are_401(client, runtime, app_client, case):
    claims = _claims(runtime, app_client)
    headers: dict = {}
    typ = "at+jwt"
    if case == "expired":
        claims["exp"] = int(time.time()) - 60
    elif case == "wrong_aud":
        claims["aud"] = "someone-else"
    elif case == "wrong_iss":
        claims["iss"] = "https://evil.example"
    elif case.startswith("missing_"):
        del claims[case.removeprefix("missing_")]
    elif case == "wrong_typ":
        typ = "JWT"
    elif case == "receipt_typ":
        typ = "consent-receipt+jwt"
    elif case == "jku_header":
        headers["jku"] = "https://evil.example/jwks.json"
    elif case == "jwk_header":
        headers["jwk"] = runtime.signer.public_jwk
    elif case == "x5u_header":
        headers["x5u"] = "https://evil.example/cert.pem"
    elif case == "wrong_kid":
        headers["kid"] = "other"
    elif case == "iat_in_the_future":  # beyond the 5 s leeway, still unexpired
        claims["iat"] = int(time.time()) + 120
        claims["exp"] = claims["iat"] + 300
    elif case == "lifetime_beyond_the_maximum":
        claims["exp"] = claims["iat"] + runtime.settings.token_ttl_seconds + 3600
    elif case == "list_valued_aud":
        claims["aud"] = [runtime.settings.token_audience, "someone-else"]
    tok = _signed(runtime, claims, typ=typ, **headers)
    r = _lookup(client, tok)
    assert r.status_code == 401, case
    assert r.json()["error"] == "not_authenticated"
    assert tok not in r.text


def test_alg_none_is_401(client, runtime, app_client):
    tok = _forge(
        {"alg": "none", "typ": "at+jwt", "kid": runtime.signer.kid}, _claims(runtime, app_client)
    )
    assert _lookup(client, tok).status_code == 401
    assert _lookup(client, tok.rstrip(".")).status_code == 401


def test_hs256_signed_with_public_key_is_401(client, runtime, app_client):
    header = {"alg": "HS256", "typ": "at+jwt", "kid": runtime.signer.kid}
    unsigned = _forge(header, _claims(runtime, app_client)).rsplit(".", 1)[0]
    for secret in (
        runtime.signer._public_pem.encode(),
        json.dumps(runtime.signer.public_jwk).encode(),
    ):
        sig = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        assert _lookup(client, f"{unsigned}.{_b64(sig)}").status_code == 401


def test_jwe_and_garbage_are_401(client, runtime, app_client):
    jwe_like = ".".join(
        _b64(b'{"alg":"RSA-OAEP","enc":"A256GCM"}') if i == 0 else "AAAA" for i in range(5)
    )
    for tok in (jwe_like, "a.b.c", "x" * 10000, "....", "eyJ9.eyJ9.eyJ9"):
        assert _lookup(client, tok).status_code == 401


def test_tampered_payload_is_401(client, runtime, app_client):
    tok = token(runtime, app_client)
    h, p, s = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "==="))
    claims["scope"] = "customers:write admin"
    assert _lookup(client, f"{h}.{_b64(json.dumps(claims).encode())}.{s}").status_code == 401


def test_deleted_or_disabled_client_token_is_401(client, runtime, session, app_client):
    tok = token(runtime, app_client)
    row = session.get(Client, app_client.id)
    session.delete(row)
    session.commit()
    assert _lookup(client, tok).status_code == 401


def test_scope_removed_from_client_takes_effect(client, runtime, session, app_client):
    tok = token(runtime, app_client)
    row = session.get(Client, app_client.id)
    row.scopes = "consent:read"
    session.add(row)
    session.commit()
    assert _lookup(client, tok).status_code == 403


def test_verified_token_cache_honours_exp_and_is_bounded(monkeypatch):
    from vault.auth import service

    cache = service._VerifiedTokens(size=8)
    now = time.time()
    cache.put("a", {"exp": now + 10})
    assert cache.get("a") == {"exp": now + 10}
    monkeypatch.setattr(service.time, "time", lambda: now + 11)
    assert cache.get("a") is None  # expired tokens are never served from the cache
    for i in range(20):
        cache.put(str(i), {"exp": now + 100})
    assert len(cache._claims) <= 8


def test_cached_token_of_deleted_client_is_refused(client, runtime, session, app_client):
    tok = token(runtime, app_client)
    assert _lookup(client, tok).status_code == 404  # now in the verified-token cache
    session.delete(session.get(Client, app_client.id))
    session.commit()
    assert _lookup(client, tok).status_code == 401


@pytest.fixture
def other_vault_tokens(client, runtime, session):
    """Every other token or secret the vault hands out, each got the way a caller gets it."""
    from tests.factories import auth_headers, create_customer
    from vault.events.secrets import generate_secret

    customer = create_customer(session, runtime)
    writer = auth_headers(session, runtime, "consent:write", "consent:confirm", "selfservice:issue")
    session.rollback()
    out: dict[str, str] = {}
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "personalised_offers", "status": "granted", "channel": "web"},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    out["consent_receipt"] = r.json()["receipt"]
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    out["double_opt_in_token"] = r.json()["confirmation_token"]
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=writer)
    assert r.status_code == 202, r.text
    out["magic_link_token"] = mailed_link(runtime, r.json()["mail_id"]).rsplit("/", 1)[1]
    r = client.get(f"/me/login/{out['magic_link_token']}", follow_redirects=False)
    assert r.status_code == 303, r.text
    out["selfservice_session"] = r.cookies["vault_session"]
    client.cookies.clear()
    # a webhook secret as POST /v1/webhooks makes it (the route refuses loopback URLs here)
    out["webhook_secret"] = generate_secret()
    return out


@pytest.mark.parametrize(
    "kind",
    [
        "consent_receipt",
        "double_opt_in_token",
        "magic_link_token",
        "selfservice_session",
        "webhook_secret",
    ],
)
def test_no_other_vault_token_passes_as_an_access_token(
    client, runtime, app_client, other_vault_tokens, kind
):
    tok = other_vault_tokens[kind]
    if kind == "consent_receipt":  # an ES256 JWS under the very key that signs access tokens
        header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "==="))
        assert header["alg"] == "ES256" and header["kid"] == runtime.signer.kid
    r = _lookup(client, tok)
    assert r.status_code == 401, kind
    assert r.json()["error"] == "not_authenticated"
    assert tok not in r.text
    # and not as a form of HTTP Basic or a token-endpoint secret either
    r = client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": app_client.id, "client_secret": tok},
    )
    assert r.status_code == 401
    assert tok not in r.text


def _respell_last_char(segment: str) -> str:
    """The same bytes, spelled with other (ignored) trailing bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 4, 3: 2}[len(segment) % 4]  # unused low bits of the last character
    index = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[index ^ ((1 << spare) - 1)]


@pytest.mark.parametrize("how", ["padded_payload", "respelled_signature", "standard_alphabet"])
def test_non_canonical_encodings_of_a_valid_token_are_401(client, runtime, app_client, how):
    good = _signed(runtime, _claims(runtime, app_client))
    assert _lookup(client, good).status_code == 404  # the original passes
    header, payload, signature = good.split(".")
    if how == "padded_payload":
        payload += "=" * (-len(payload) % 4) or "===="
    elif how == "respelled_signature":
        signature = _respell_last_char(signature)
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != signature
    else:
        signature = signature.replace("-", "+").replace("_", "/")
        if signature == good.split(".")[2]:
            pytest.skip("this signature has no - or _ to respell")
    tok = ".".join((header, payload, signature))
    assert tok != good
    r = _lookup(client, tok)
    assert r.status_code == 401, how
    assert r.json()["error"] == "not_authenticated"
