"""Issue 10: rate limits of the token endpoint and the self-service link (memory and Redis)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests import factories
from tests.selfservice.helpers import mailed_link
from vault.app import create_app
from vault.auth import service as auth_service
from vault.ratelimit import RateLimited, RateLimiter
from vault.runtime import Runtime


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


def _audit_rows(session, action: str) -> list:
    from sqlalchemy import select

    from vault.audit.models import AuditEvent

    session.rollback()
    return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_token_endpoint_is_limited_per_client_id(limited, clock, session):
    """Failures per client id (successes are refunded); an address that got a token for the id
    is not refused by it (tests/auth/test_token_limits.py: nobody can lock the app out)."""
    rt, tc = limited(token_client="3/minute")
    a, secret_a = factories.create_client(session, rt, scopes=["customers:write"])
    b, secret_b = factories.create_client(session, rt, scopes=["customers:write"])
    for _ in range(3):
        assert _token(tc, a.id, "wrong-" + secret_a).status_code == 401
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
    assert [r.status_code for r in links] == [202, 202]
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
    assert issue(second).status_code == 202
    clock.now += 3601
    assert issue(first).status_code == 202


def test_unauthenticated_link_requests_do_not_spend_a_customers_budget(limited, session):
    rt, tc = limited(link_customer="1/hour")
    customer = factories.create_customer(session, rt)
    for _ in range(3):
        assert tc.post(f"/v1/customers/{customer.id}/selfservice-link").status_code == 401
    headers = factories.auth_headers(session, rt, "selfservice:issue")
    assert (
        tc.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers).status_code == 202
    )


def test_magic_link_guessing_is_limited_per_address(limited, clock, session):
    rt, tc = limited(login_failures_ip="3/minute")
    customer = factories.create_customer(session, rt)
    headers = factories.auth_headers(session, rt, "selfservice:issue")
    r = tc.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    path = mailed_link(rt, r.json()["mail_id"])
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
