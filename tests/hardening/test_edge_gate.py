"""Issue 17: unauthenticated requests cost nothing. The edge checks a route's bearer token before
the app may receive a byte of its body; routes without a token get a small body cap; request
headers and form fields are capped with documented answers.

The app is driven as plain ASGI here, so the test sees every ``receive()`` the app makes: a
refused request must never have asked for its body. (The real server's memory under a 64 MiB
unauthenticated import is measured in ``test_edge_server.py``.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from tests import factories
from vault.auth.scopes import Scope
from vault.auth.service import ACCESS_TOKEN_TYP
from vault.http import MAX_FORM_FIELDS, MAX_HEADER_BYTES, UNAUTHENTICATED_BODY_BYTES

PIECE = b"x" * 1024


def asgi_call(
    app: Any,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    pieces: int = 8,
    length: bool = True,
) -> tuple[int, dict[str, str], bytes, int]:
    """One request straight into the ASGI app: (status, headers, body, how many body pieces
    the app received). The body is ``pieces`` KiB, with Content-Length or chunked."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= pieces:
            await asyncio.sleep(3600)  # the client waits for the answer
        pulled += 1
        return {"type": "http.request", "body": PIECE, "more_body": pulled < pieces}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw.append(
        (b"content-length", str(pieces * len(PIECE)).encode())
        if length
        else (b"transfer-encoding", b"chunked")
    )
    scope = factories.asgi_scope(method, path, raw, client=("198.51.100.7", 40000))

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=30)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out_headers, body, pulled


def _bearer_operations(app) -> list[tuple[str, str, list[str], bool]]:
    """Every operation that needs a bearer token: (method, path filled in, its scopes, whether
    it takes a body)."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if "security" not in op:
                continue
            filled = path.replace("{purpose}", "newsletter")
            for name in ("customer_id", "webhook_id", "request_uuid"):
                filled = filled.replace("{" + name + "}", str(uuid.uuid4()))
            scopes = sorted({s for req in op["security"] for s in req["client_credentials"]})
            out.append((method.upper(), filled, scopes, "requestBody" in op))
    assert len(out) > 35
    return out


def _expired(runtime, client) -> str:
    now = int(time.time())
    return runtime.signer.sign(
        {
            "iss": runtime.settings.issuer,
            "aud": runtime.settings.token_audience,
            "sub": client.id,
            "client_id": client.id,
            "scope": " ".join(s.value for s in Scope),
            "iat": now - 600,
            "exp": now - 60,
            "jti": "expired",
        },
        typ=ACCESS_TOKEN_TYP,
    )


REQUIRED = (401, "not_authenticated", "A valid bearer token is required.")
SCHEME = (401, "not_authenticated", "Use 'Authorization: Bearer <token>'.")
INVALID = (401, "not_authenticated", "The bearer token is invalid or expired.")


def test_no_route_receives_its_body_before_the_token_is_checked(app, session, runtime):
    everything, _ = factories.create_client(
        session, runtime, scopes=[s.value for s in Scope], purposes=list(runtime.policy.purposes)
    )
    weak, _ = factories.create_client(session, runtime, scopes=["selfservice:issue"])
    refused = {
        "no token": ({}, REQUIRED),
        "basic": ({"authorization": "Basic Y3ZfeDp5"}, SCHEME),
        "garbage": ({"authorization": "Bearer not.a.token"}, INVALID),
        "expired": ({"authorization": f"Bearer {_expired(runtime, everything)}"}, INVALID),
    }
    weak_token = {"authorization": f"Bearer {factories.token(runtime, weak)}"}
    good = {"authorization": f"Bearer {factories.token(runtime, everything)}"}
    for method, path, scopes, takes_body in _bearer_operations(app):
        for what, (headers, (status, code, detail)) in refused.items():
            for length in (True, False):
                got, h, body, pulled = asgi_call(app, method, path, headers=headers, length=length)
                where = (method, path, what, length)
                assert (got, pulled) == (status, 0), where
                assert orjson.loads(body) == {"error": code, "detail": detail}, where
                assert h["www-authenticate"].startswith('Bearer realm="consent-vault"'), where
                assert h["x-content-type-options"] == "nosniff", where
        if scopes and scopes != ["selfservice:issue"]:
            got, h, body, pulled = asgi_call(app, method, path, headers=weak_token)
            assert (got, pulled) == (403, 0), (method, path)
            assert orjson.loads(body)["error"] == "insufficient_scope"
            assert orjson.loads(body)["detail"] == (
                f"This operation needs the scope {' and '.join(scopes)}."
            )
            assert 'error="insufficient_scope"' in h["www-authenticate"]
        # the permitted caller's body is received (and then judged by the route)
        got, _h, _body, pulled = asgi_call(app, method, path, headers=good, pieces=2)
        assert got not in (401, 403), (method, path, got)
        assert pulled >= 1 or not takes_body, (method, path)


def test_the_edge_answers_as_the_route_dependency_does(client, session, runtime):
    """The same refusal from the edge (a body is coming) and from the route's dependency (a
    request without a body, which the edge leaves to it)."""
    weak = factories.auth_headers(session, runtime, "selfservice:issue")
    for headers in ({}, {"authorization": "Token x"}, {"authorization": "Bearer x.y.z"}, weak):
        cid = uuid.uuid4()
        edge = client.post(f"/v1/customers/{cid}/restriction", json={}, headers=headers)
        dependency = client.get(f"/v1/customers/{cid}/export", headers=headers)
        assert edge.status_code == dependency.status_code in (401, 403)
        assert edge.json()["error"] == dependency.json()["error"]
        if edge.status_code == 401:
            assert edge.json() == dependency.json()
        assert edge.headers["www-authenticate"] == dependency.headers["www-authenticate"]


def test_a_deleted_clients_token_is_still_refused_by_the_route(client, session, runtime):
    """The edge checks no database; the route's dependency still loads the client."""
    from vault.auth.models import Client

    c, _ = factories.create_client(session, runtime, scopes=["customers:write"])
    headers = {"Authorization": f"Bearer {factories.token(runtime, c)}"}
    session.delete(session.get(Client, c.id))
    session.commit()
    r = client.post("/v1/customers", json={"attributes": {}}, headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"


def test_routes_without_a_bearer_token_have_a_small_body_cap(client, session, runtime):
    """The token endpoint (its body is the credentials), the self-service forms and the other
    routes that take no bearer token: 16 KiB, though VAULT_MAX_BODY_BYTES is 1 MiB."""
    assert runtime.settings.max_body_bytes > UNAUTHENTICATED_BODY_BYTES
    form = "application/x-www-form-urlencoded"
    c, secret = factories.create_client(session, runtime, scopes=["audit:read"])
    creds = f"grant_type=client_credentials&client_id={c.id}&client_secret={secret}"
    padded = creds + "&scope=audit:read" + " " * (UNAUTHENTICATED_BODY_BYTES - len(creds) - 40)
    r = client.post("/v1/oauth/token", content=padded, headers={"content-type": form})
    assert r.status_code == 200, r.text  # under the cap: an ordinary grant
    for path in ("/v1/oauth/token", "/me/objection", "/me/logout"):
        body = b"a=" + b"b" * UNAUTHENTICATED_BODY_BYTES
        r = client.post(path, content=body, headers={"content-type": form})
        assert r.status_code == 413, (path, r.status_code)
        assert r.json()["error"] == "payload_too_large"
        # chunked (no Content-Length): counted while it is read
        r = client.post(
            path, content=iter([body[:8000], body[8000:]]), headers={"content-type": form}
        )
        assert r.status_code == 413, (path, r.status_code)


def test_request_headers_past_16_kib_are_431(client):
    base = client.get("/v1/purposes")
    assert base.status_code == 200
    # a few headers of the 16 KiB between them: fine; one byte more: 431
    size = MAX_HEADER_BYTES - sum(len(k) + len(v) + 4 for k, v in base.request.headers.raw)
    fill = {"x-fill": "a" * (size - len("x-fill") - 4)}
    assert client.get("/v1/purposes", headers=fill).status_code == 200
    fill = {"x-fill": "a" * (size - len("x-fill") - 3)}
    for r in (
        client.get("/v1/purposes", headers=fill),
        client.post("/v1/customers/import", content=b"{}\n", headers=fill),
        client.get("/me", headers=fill),
    ):
        assert r.status_code == 431, r.text
        assert r.json() == {
            "error": "request_headers_too_large",
            "detail": f"The request headers are too large (at most {MAX_HEADER_BYTES} bytes).",
        }
        assert r.headers["x-content-type-options"] == "nosniff"
    many = {f"x-h{i}": "v" * 100 for i in range(200)}  # many small ones count together
    assert client.get("/v1/purposes", headers=many).status_code == 431


def test_431_is_documented_on_every_operation(app):
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            assert op["responses"]["431"]["description"] == "request_headers_too_large", (
                method,
                path,
            )


def test_a_form_with_more_than_1000_fields_is_413_too_many_fields(client):
    def form(n: int) -> bytes:
        return "&".join(f"f{i}=v" for i in range(n)).encode()

    ct = {"content-type": "application/x-www-form-urlencoded"}
    body = form(MAX_FORM_FIELDS + 1)
    assert len(body) < UNAUTHENTICATED_BODY_BYTES  # the count refuses it, not the size
    r = client.post("/v1/oauth/token", content=body, headers=ct)
    assert r.status_code == 413, r.text
    assert r.json() == {
        "error": "too_many_fields",
        "detail": f"A form may have at most {MAX_FORM_FIELDS} fields.",
    }
    # a page's form: the friendly page, same status
    page = client.post("/me/objection", content=body, headers=ct)
    assert page.status_code == 413, page.text[:300]
    assert "text/html" in page.headers["content-type"]
    # at the limit: parsed, and judged by the route (no grant_type: 422)
    r = client.post("/v1/oauth/token", content=form(MAX_FORM_FIELDS), headers=ct)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    # multipart: 1,001 parts do not fit the 16 KiB cap of a route without a bearer token
    parts = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
        for i in range(MAX_FORM_FIELDS + 1)
    )
    r = client.post(
        "/v1/oauth/token",
        content=parts + b"--B--\r\n",
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_a_malformed_multipart_form_is_422_not_400(client):
    r = client.post(
        "/v1/oauth/token",
        content=b"--B\r\nnonsense\r\n",
        headers={"content-type": "multipart/form-data"},  # no boundary
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"


def test_too_many_fields_is_documented_where_a_form_is_taken(app):
    op = app.openapi()["paths"]["/v1/oauth/token"]["post"]
    assert "too_many_fields" in op["responses"]["413"]["description"].split(", ")
