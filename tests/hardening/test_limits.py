"""Issue 10, items 3 and 4: rate limits, page-size caps, body and import limits, edge headers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import limits.storage.memory
import pytest
from fastapi.testclient import TestClient

from tests import factories
from vault.app import create_app
from vault.auth import service as auth_service
from vault.ratelimit import RateLimited, RateLimiter
from vault.runtime import Runtime

# --- A. rate limits ---------------------------------------------------------------------------


class Clock:
    """Stands in for the time module of the in-memory limits storage and for the limiter."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(limits.storage.memory, "time", c)
    return c


@pytest.fixture
def built(settings) -> Iterator:
    """``built(client_addr=..., **settings)`` -> (runtime, TestClient) of an app so configured."""
    made: list[tuple[Runtime, TestClient]] = []

    def make(client_addr: tuple[str, int] = ("198.51.100.7", 40000), **updates: object):
        rt = Runtime.build(settings.model_copy(update=updates))
        tc = TestClient(create_app(rt), raise_server_exceptions=False, client=client_addr)
        tc.__enter__()
        made.append((rt, tc))
        return rt, tc

    yield make
    for rt, tc in made:
        tc.__exit__(None, None, None)
        rt.engine.dispose()


@pytest.fixture
def limited(built, clock):
    """``limited(**rate_limit_settings)`` -> (runtime, TestClient) with tight limits."""

    def make(client_addr: tuple[str, int] = ("198.51.100.7", 40000), **overrides: str):
        rt, tc = built(client_addr, **{f"rate_limit_{k}": v for k, v in overrides.items()})
        rt.limiter.clock = clock.time
        return rt, tc

    return make


def _token(tc: TestClient, client_id: str, secret: str):
    return tc.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def _assert_429(r, *, window: int, secrets: tuple[str, ...] = ()) -> None:
    assert r.status_code == 429, r.text
    retry = int(r.headers["retry-after"])
    assert 0 < retry <= window
    body = r.json()
    assert body["error"] == "rate_limited"
    assert body["detail"]
    for s in secrets:
        assert s not in r.text


def test_token_endpoint_is_limited_per_client_id(limited, clock, session):
    rt, tc = limited(token_client="3/minute")
    a, secret_a = factories.create_client(session, rt, scopes=["customers:write"])
    b, secret_b = factories.create_client(session, rt, scopes=["customers:write"])
    for _ in range(3):
        assert _token(tc, a.id, secret_a).status_code == 200
    r = _token(tc, a.id, secret_a)
    _assert_429(r, window=60, secrets=(secret_a,))
    assert "access_token" not in r.text
    # HTTP Basic counts against the same client id
    basic = tc.post(
        "/v1/oauth/token", data={"grant_type": "client_credentials"}, auth=(a.id, secret_a)
    )
    assert basic.status_code == 429
    # another client is not throttled
    assert _token(tc, b.id, secret_b).status_code == 200
    # after the window the client passes again
    clock.now += 61
    assert _token(tc, a.id, secret_a).status_code == 200


def test_failed_token_requests_are_limited_per_address_before_argon2(
    limited, clock, session, monkeypatch
):
    rt, tc = limited(token_failures_ip="3/minute")
    c, secret = factories.create_client(session, rt, scopes=["customers:write"])
    for _ in range(3):
        assert _token(tc, c.id, "wrong-" + secret).status_code == 401
    calls = []
    real = auth_service._hasher

    class Spy:
        def verify(self, *args):
            calls.append(1)
            return real.verify(*args)

    monkeypatch.setattr(auth_service, "_hasher", Spy())
    # now even the right secret is refused, without the Argon2 check
    r = _token(tc, c.id, secret)
    _assert_429(r, window=60, secrets=(secret,))
    assert calls == []
    # successful requests from the same address did not count as failures elsewhere
    _, other = limited(client_addr=("203.0.113.9", 40000), token_failures_ip="3/minute")
    assert _token(other, c.id, secret).status_code == 200
    clock.now += 61
    assert _token(tc, c.id, secret).status_code == 200
    assert calls


def test_successful_token_requests_do_not_spend_the_failure_budget(limited, session):
    rt, tc = limited(token_failures_ip="2/minute")
    c, secret = factories.create_client(session, rt, scopes=["customers:write"])
    for _ in range(5):
        assert _token(tc, c.id, secret).status_code == 200


def test_token_requests_are_limited_per_address(limited, session):
    rt, tc = limited(token_ip="3/minute")
    ids = [factories.create_client(session, rt, scopes=["customers:write"]) for _ in range(4)]
    for c, secret in ids[:3]:
        assert _token(tc, c.id, secret).status_code == 200
    _assert_429(_token(tc, ids[3][0].id, ids[3][1]), window=60, secrets=(ids[3][1],))


def test_a_429_does_not_tell_whether_a_client_id_exists(limited, session):
    rt, tc = limited(token_client="2/minute")
    known, _ = factories.create_client(session, rt, scopes=["customers:write"])
    unknown = auth_service.new_client_id()
    answers = []
    for client_id in (known.id, unknown):
        seen = [_token(tc, client_id, "guess") for _ in range(3)]
        answers.append([(r.status_code, r.json()["error"]) for r in seen])
    assert (
        answers[0]
        == answers[1]
        == [
            (401, "invalid_client"),
            (401, "invalid_client"),
            (429, "rate_limited"),
        ]
    )


def test_selfservice_links_are_limited_per_customer(limited, clock, session):
    rt, tc = limited(link_customer="2/hour")
    headers = factories.auth_headers(session, rt, "selfservice:issue")
    first = factories.create_customer(session, rt)
    second = factories.create_customer(session, rt)

    def issue(customer):
        return tc.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)

    links = [issue(first) for _ in range(2)]
    assert [r.status_code for r in links] == [200, 200]
    r = issue(first)
    _assert_429(r, window=3600)
    assert "/me/login/" not in r.text
    assert r.headers["cache-control"] == "no-store"
    assert issue(first).status_code == 429
    # one audit event per window, not one per refusal
    throttled = _audit_rows(session, "selfservice.link_throttled")
    assert [(e.customer_id, e.outcome, e.reason) for e in throttled] == [
        (first.id, "denied", "rate_limited")
    ]
    assert issue(second).status_code == 200
    clock.now += 3601
    assert issue(first).status_code == 200


def test_unauthenticated_link_requests_do_not_spend_a_customers_budget(limited, session):
    rt, tc = limited(link_customer="1/hour")
    customer = factories.create_customer(session, rt)
    for _ in range(3):
        assert tc.post(f"/v1/customers/{customer.id}/selfservice-link").status_code == 401
    headers = factories.auth_headers(session, rt, "selfservice:issue")
    assert (
        tc.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers).status_code == 200
    )


def test_magic_link_guessing_is_limited_per_address(limited, clock, session):
    rt, tc = limited(login_failures_ip="3/minute")
    customer = factories.create_customer(session, rt)
    headers = factories.auth_headers(session, rt, "selfservice:issue")
    url = tc.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers).json()["url"]
    path = url[len(rt.settings.public_url) :]
    for _ in range(3):
        r = tc.get(f"/me/login/{uuid.uuid4().hex}", follow_redirects=False)
        assert r.status_code == 401
    # the real link is refused too, and stays unused: nothing was looked up
    r = tc.get(path, follow_redirects=False, headers={"accept-language": "en"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.headers["content-type"].startswith("text/html")
    assert "Too many attempts" in r.text
    assert "vault_session" not in r.headers.get("set-cookie", "")
    de = tc.get(path, follow_redirects=False, headers={"accept-language": "de"})
    assert de.status_code == 429
    assert "Zu viele Versuche" in de.text
    # another address is not throttled
    _, other = limited(client_addr=("203.0.113.9", 40000), login_failures_ip="3/minute")
    assert other.get(f"/me/login/{uuid.uuid4().hex}", follow_redirects=False).status_code == 401
    # after the window the link still works, once
    clock.now += 61
    r = tc.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/me"


def test_429_is_declared_for_the_limited_operations(app):
    doc = app.openapi()
    for path, method in (
        ("/v1/oauth/token", "post"),
        ("/v1/customers/{customer_id}/selfservice-link", "post"),
    ):
        assert "rate_limited" in doc["paths"][path][method]["responses"]["429"]["description"]


def test_rate_limit_settings_are_checked(settings):
    from pydantic import ValidationError

    from vault.config import Settings

    with pytest.raises(ValidationError):
        Settings(rate_limit_token_client="lots", _env_file=None)
    assert RateLimiter(settings, key=b"k" * 32).items["token_client"].amount > 0


def _redis_url() -> str:
    pytest.importorskip("redis")
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    return url


def test_redis_storage_is_shared_between_limiters(settings):
    from limits.storage import storage_from_string

    url = _redis_url()
    tight = settings.model_copy(
        update={"rate_limit_storage": url, "rate_limit_link_customer": "2/hour"}
    )
    prefix = f"vault-test-{uuid.uuid4().hex}"
    # two replicas: each its own limiter, one Redis
    replicas = [
        RateLimiter(tight, key=b"k" * 32, storage=storage_from_string(url, key_prefix=prefix))
        for _ in range(2)
    ]
    try:
        replicas[0].hit("link_customer", "c1")
        replicas[1].hit("link_customer", "c1")
        with pytest.raises(RateLimited) as err:
            replicas[0].hit("link_customer", "c1")
        assert 0 < err.value.retry_after <= 3600
        replicas[1].hit("link_customer", "c2")
    finally:
        replicas[0].reset()
    # the setting alone selects Redis
    rt = Runtime.build(tight)
    try:
        assert type(rt.limiter.storage).__name__ == "RedisStorage"
    finally:
        rt.engine.dispose()


def test_an_unreachable_storage_lets_requests_through(settings, session):
    pytest.importorskip("redis")
    down = settings.model_copy(
        update={"rate_limit_storage": "redis://127.0.0.1:1/0", "rate_limit_token_client": "1/hour"}
    )
    rt = Runtime.build(down)
    try:
        c, secret = factories.create_client(session, rt, scopes=["customers:write"])
        with TestClient(create_app(rt), raise_server_exceptions=False) as tc:
            assert [_token(tc, c.id, secret).status_code for _ in range(2)] == [200, 200]
    finally:
        rt.engine.dispose()


# --- B. page-size caps ------------------------------------------------------------------------

# Every operation that takes ``limit``: (operation id, path, scope, documented maximum).
LIST_ENDPOINTS = [
    ("list_audit_events", "/v1/audit/events", "audit:read", 1000),
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


# --- C. body and import limits ----------------------------------------------------------------

# The self-service pages that take a form (not in the OpenAPI document: they are HTML).
PAGE_FORMS = ["/me/consents/newsletter", "/me/objection", "/me/erase", "/me/logout"]


def _body_routes(app) -> list[tuple[str, str, str]]:
    """Every operation of the API that takes a body, path parameters filled in, with the body's
    content type; then the pages."""
    routes = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                filled = path
                for p in op.get("parameters", []):
                    if p["in"] == "path":
                        filled = filled.replace("{" + p["name"] + "}", str(uuid.uuid4()))
                media = next(iter(op["requestBody"]["content"]))
                routes.append((method.upper(), filled, media))
    assert len(routes) >= 17
    return routes + [("POST", p, "application/x-www-form-urlencoded") for p in PAGE_FORMS]


def _chunked(size: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer), ``size`` bytes in pieces."""
    while size > 0:
        yield b"x" * min(size, 256)
        size -= 256


def _assert_413(r, what) -> None:
    assert r.status_code == 413, (what, r.status_code, r.text[:200])
    assert r.json()["error"] == "payload_too_large", what
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


def test_every_route_with_a_body_answers_413_past_the_cap(built):
    _rt, tc = built(max_body_bytes=1024, max_import_bytes=4096)
    auth = {"authorization": "Bearer not-checked-before-the-body"}
    for method, path, media in _body_routes(tc.app):
        limit = 4096 if path == "/v1/customers/import" else 1024
        for ct in {media, "application/json", "application/x-www-form-urlencoded"}:
            r = tc.request(
                method, path, content=b"x" * (limit + 1), headers={**auth, "content-type": ct}
            )
            _assert_413(r, (method, path, ct, "content-length"))
        # no Content-Length: caught while the body is read, still 413 (not a 400 parse error)
        h = {**auth, "content-type": media}
        r = tc.request(method, path, content=_chunked(limit + 1), headers=h)
        _assert_413(r, (method, path, media, "chunked"))
        r = tc.request(method, path, content=_chunked(limit), headers=h)
        assert r.status_code != 413, (method, path)


def test_413_is_declared_wherever_a_body_is_taken(app):
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert op["responses"]["413"]["description"] == "payload_too_large", (method, path)


def test_the_import_has_its_own_larger_cap(built, session):
    rt, tc = built(max_body_bytes=1024, max_import_bytes=4096)
    headers = {
        **factories.auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    line = b'{"attributes": {"last_name": "Gross"}}\n'
    body = line * (3000 // len(line))  # over the general cap, under the import cap
    r = tc.post("/v1/customers/import", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == body.count(b"\n")
    before = _customers(session)
    r = tc.post("/v1/customers/import", content=line * (5000 // len(line)), headers=headers)
    _assert_413(r, "import")
    assert _customers(session) == before


def test_the_default_caps_are_the_documented_ones(client, settings):
    assert settings.max_body_bytes == 1_048_576
    assert settings.max_import_bytes == 67_108_864
    r = client.post(
        "/v1/customers",
        content=b"x" * (settings.max_body_bytes + 1),
        headers={"content-type": "application/json"},
    )
    _assert_413(r, "default")


def _customers(session) -> int:
    from sqlalchemy import func, select

    from vault.customers.models import Customer

    session.rollback()
    return session.execute(select(func.count()).select_from(Customer)).scalar_one()


def _audit_rows(session, action: str) -> list:
    from sqlalchemy import select

    from vault.audit.models import AuditEvent

    session.rollback()
    return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def _audit_actions(session) -> list[str]:
    from sqlalchemy import select

    from vault.audit.models import AuditEvent

    session.rollback()
    return list(session.execute(select(AuditEvent.action)).scalars())


def test_an_import_line_past_the_length_limit_is_refused_and_not_stored(client, session, runtime):
    from vault.customers.importer import MAX_LINE_BYTES

    headers = {
        **factories.auth_headers(session, runtime, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    good = b'{"attributes": {"last_name": "Kurz"}}'
    long = b'{"attributes": {"last_name": "' + b"L" * MAX_LINE_BYTES + b'"}}'
    r = client.post("/v1/customers/import", content=b"\n".join([good, long, good]), headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 2
    assert [(e["line"], e["error"]) for e in report["errors"]] == [(2, "line_too_long")]
    assert "LLLL" not in r.text
    assert _customers(session) == 2


def test_an_import_past_the_line_count_is_refused_whole(built, session):
    rt, tc = built(max_import_lines=5)
    headers = {
        **factories.auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    line = b'{"attributes": {"last_name": "Viele"}}\n'
    actions = _audit_actions(session)
    r = tc.post("/v1/customers/import", content=line * 6, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "too_many_lines"
    assert "5" in r.json()["detail"]
    assert _customers(session) == 0
    assert _audit_actions(session) == actions
    r = tc.post("/v1/customers/import", content=line * 5, headers=headers)
    assert r.status_code == 200 and r.json()["created"] == 5


# --- D. security headers on every response ----------------------------------------------------


def _assert_edge_headers(r, what, *, no_store: bool = True) -> None:
    from vault.http import SECURITY_HEADERS

    for name, value in SECURITY_HEADERS:
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
        client.get("/v1/purposes/personalised_offers/audience", headers=h),
        client.get(f"/v1/customers/{cid}/export", headers=h),
        client.get("/v1/audit/events", params={"customer_id": cid}, headers=h),
        client.get("/v1/audit/events", headers={**h, "accept": "application/x-ndjson"}),
        client.get("/v1/dsr/requests", headers=h),
        client.post("/v1/clients", json={"name": "x", "scopes": ["audit:read"]}, headers=h),
    ]
    link = client.post(f"/v1/customers/{cid}/selfservice-link", headers=h)
    answers.append(link)
    path = link.json()["url"][len(runtime.settings.public_url) :]
    answers.append(client.get(path, follow_redirects=False))
    for page in ("/me", "/me/consents", "/me/data", "/me/activity", "/me/export", "/me/erase"):
        answers.append(client.get(page))
    for r in answers:
        assert r.status_code in (200, 201, 303), (r.request.url, r.status_code, r.text[:200])
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
        "docs": client.get("/docs"),
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
