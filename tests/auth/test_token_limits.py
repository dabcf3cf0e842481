"""Issue 17 item 4: rate limits of the token endpoint that cannot be turned against their owner
or dodged.

- a client id's budget counts failures only, and never refuses an address that got a token for
  that id within a day: knowing a client id does not let anyone lock that app out;
- failure budgets are charged before the Argon2 check and refunded on success, so parallel
  wrong secrets cannot all pass a check that only counts finished failures;
- ``X-Forwarded-For`` counts only from the proxies the operator names.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests import factories
from tests.hardening.server import Server
from vault.auth import service as auth_service
from vault.ratelimit import RateLimited, RateLimiter

ATTACKER = ("203.0.113.66", 51000)
NEWCOMER = ("192.0.2.44", 52000)


def _token(tc: TestClient, client_id: str, secret: str, **kw):
    return tc.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        **kw,
    )


class SlowSpy:
    """Stands in for the Argon2 hasher: counts checks and makes each one slow, so parallel
    requests overlap for sure."""

    def __init__(self, real, delay: float = 0.0):
        self.real, self.delay = real, delay
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, hashed, secret):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.real.verify(hashed, secret)

    def hash(self, secret):
        return self.real.hash(secret)


def test_parallel_wrong_secrets_are_charged_before_the_work(limited, session, monkeypatch):
    rt, tc = limited(token_failures_ip="10/minute")
    c, secret = factories.create_client(session, rt, scopes=["audit:read"])
    spy = SlowSpy(auth_service._hasher, delay=0.2)
    monkeypatch.setattr(auth_service, "_hasher", spy)
    with ThreadPoolExecutor(25) as pool:
        answers = list(pool.map(lambda i: _token(tc, c.id, f"wrong-{i}"), range(25)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 10 + [429] * 15, codes
    assert spy.calls == 10  # the refused ones never reached Argon2
    # the refunds of successes leave the budget to failures: the right secret is refused too
    assert _token(tc, c.id, secret).status_code == 429


def test_successes_are_refunded_so_they_never_spend_a_failure_budget(limited, session):
    rt, tc = limited(token_client="2/minute", token_failures_ip="2/minute")
    c, secret = factories.create_client(session, rt, scopes=["audit:read"])
    assert [_token(tc, c.id, secret).status_code for _ in range(6)] == [200] * 6
    # the budget is whole: two failures still fit before the third is refused
    assert [_token(tc, c.id, "wrong").status_code for _ in range(3)] == [401, 401, 429]


def test_knowing_a_client_id_does_not_lock_the_app_out(limited, clock, session, monkeypatch):
    rt, app_tc = limited(token_client="3/minute", token_failures_ip="1000/minute")
    c, secret = factories.create_client(session, rt, scopes=["audit:read"])
    assert _token(app_tc, c.id, secret).status_code == 200  # the app's address is now known
    app = app_tc.app
    with (
        TestClient(app, raise_server_exceptions=False, client=ATTACKER) as attacker,
        TestClient(app, raise_server_exceptions=False, client=NEWCOMER) as newcomer,
    ):
        guesses = [_token(attacker, c.id, f"guess-{i}").status_code for i in range(8)]
        assert guesses == [401] * 3 + [429] * 5
        spy = SlowSpy(auth_service._hasher)
        monkeypatch.setattr(auth_service, "_hasher", spy)
        # the app keeps getting tokens from its address
        assert [_token(app_tc, c.id, secret).status_code for _ in range(3)] == [200] * 3
        assert spy.calls == 3
        # an address that never got a token for this id is refused before Argon2, even with
        # the right secret: the id's budget still stops a guess spread over many addresses
        r = _token(newcomer, c.id, secret)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert spy.calls == 3 and secret not in r.text
        clock.now += 61
        assert _token(newcomer, c.id, secret).status_code == 200


def test_a_known_addresss_own_failures_count_but_do_not_lock_it_out(limited, session):
    rt, tc = limited(token_client="2/minute", token_failures_ip="1000/minute")
    c, secret = factories.create_client(session, rt, scopes=["audit:read"])
    assert _token(tc, c.id, secret).status_code == 200
    assert [_token(tc, c.id, "stale").status_code for _ in range(3)] == [401] * 3
    assert _token(tc, c.id, secret).status_code == 200
    with TestClient(tc.app, raise_server_exceptions=False, client=NEWCOMER) as newcomer:
        assert _token(newcomer, c.id, secret).status_code == 429


def test_the_budgets_of_unknown_and_known_ids_look_the_same_to_a_stranger(limited, session):
    rt, tc = limited(token_client="2/minute", token_failures_ip="1000/minute")
    known, secret = factories.create_client(session, rt, scopes=["audit:read"])
    assert _token(tc, known.id, secret).status_code == 200  # known here, not to the stranger
    with TestClient(tc.app, raise_server_exceptions=False, client=ATTACKER) as stranger:
        answers = [
            [_token(stranger, cid, "guess").json()["error"] for _ in range(3)]
            for cid in (known.id, auth_service.new_client_id())
        ]
    assert answers[0] == answers[1] == ["invalid_client", "invalid_client", "rate_limited"]


# --- the limiter itself ---------------------------------------------------------------------


def _charge_refund_cycle(limiter: RateLimiter) -> None:
    first = limiter.charge_first("token_failures_ip", "10.0.0.1")
    limiter.charge_first("token_failures_ip", "10.0.0.1")
    with pytest.raises(RateLimited):
        limiter.charge_first("token_failures_ip", "10.0.0.1")
    limiter.refund(first)
    limiter.charge_first("token_failures_ip", "10.0.0.1")  # the refunded unit is back
    with pytest.raises(RateLimited):
        limiter.charge_first("token_failures_ip", "10.0.0.1")
    limiter.charge_first("token_failures_ip", "10.0.0.2")  # another address, its own budget
    assert not limiter.remembers("token_known", "cv_x", "10.0.0.1")
    limiter.remember("token_known", "cv_x", "10.0.0.1")
    assert limiter.remembers("token_known", "cv_x", "10.0.0.1")
    assert not limiter.remembers("token_known", "cv_x", "10.0.0.2")


def test_charge_first_and_refund_in_memory(settings):
    tight = settings.model_copy(update={"rate_limit_token_failures_ip": "2/minute"})
    _charge_refund_cycle(RateLimiter(tight, key=b"k" * 32))


def test_charge_first_and_refund_in_redis(settings):
    import uuid

    from limits.storage import storage_from_string

    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    tight = settings.model_copy(
        update={"rate_limit_storage": url, "rate_limit_token_failures_ip": "2/minute"}
    )
    prefix = f"vault-test-{uuid.uuid4().hex}"
    limiter = RateLimiter(tight, key=b"k" * 32, storage=storage_from_string(url, key_prefix=prefix))
    try:
        _charge_refund_cycle(limiter)
    finally:
        limiter.reset()


# --- proxy headers: believed only from the proxies the operator names ---------------------------


def test_forwarded_for_is_ignored_by_default(limited, session):
    _, tc = limited(token_failures_ip="3/minute")
    codes = [
        _token(tc, "cv_x", "guess", headers={"X-Forwarded-For": f"198.18.0.{i}"}).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]


def test_forwarded_for_counts_from_a_named_proxy_only(built, session):
    # the TestClient's peer is 198.51.100.7: that is the proxy
    _, proxy = built(rate_limit_token_failures_ip="3/minute", forwarded_allow_ips="198.51.100.7")
    via_proxy = [
        _token(proxy, "cv_x", "guess", headers={"X-Forwarded-For": f"198.18.0.{i}"}).status_code
        for i in range(5)
    ]
    assert via_proxy == [401] * 5  # five callers behind the proxy, one failure each
    same = [
        _token(proxy, "cv_x", "g", headers={"X-Forwarded-For": "198.18.1.1"}).status_code
        for _ in range(4)
    ]
    assert same == [401, 401, 401, 429]
    with TestClient(proxy.app, raise_server_exceptions=False, client=ATTACKER) as direct:
        codes = [
            _token(direct, "cv_x", "g", headers={"X-Forwarded-For": f"198.18.2.{i}"}).status_code
            for i in range(4)
        ]
    assert codes == [401, 401, 401, 429]  # not a named proxy: its headers are not believed


def test_forwarded_allow_ips_is_checked():
    from pydantic import ValidationError

    from vault.config import Settings

    named = Settings(forwarded_allow_ips=" 10.0.0.1, 10.1.0.0/16 ", _env_file=None)
    assert named.trusted_proxies == ["10.0.0.1", "10.1.0.0/16"]
    assert Settings(_env_file=None).trusted_proxies == []
    with pytest.raises(ValidationError, match="forwarded_allow_ips"):
        Settings(forwarded_allow_ips="proxy.internal", _env_file=None)


def test_serve_hands_the_proxy_list_to_the_app_not_to_uvicorn(settings, monkeypatch):
    import uvicorn

    from vault.cli import app as cli_app

    seen = {}
    monkeypatch.setenv("VAULT_FORWARDED_ALLOW_IPS", "")  # restored after the test
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }
    r = CliRunner().invoke(cli_app, ["serve", "--forwarded-allow-ips", "10.0.0.7"], env=env)
    assert r.exit_code == 0, r.output
    assert seen["proxy_headers"] is False  # uvicorn's default would believe 127.0.0.1
    import os

    assert os.environ["VAULT_FORWARDED_ALLOW_IPS"] == "10.0.0.7"  # the workers' app reads it


@pytest.mark.slow
def test_a_real_server_does_not_believe_forwarded_for_from_loopback(settings, tmp_path, backend):
    """Before: ``vault serve`` ran uvicorn with proxy headers on, which trusts 127.0.0.1 by
    default, so any local caller (or a same-host sidecar) chose its address per request."""
    if backend != "sqlite":
        pytest.skip("the server's address handling does not depend on the database")
    import httpx

    form = {"grant_type": "client_credentials", "client_id": "cv_x", "client_secret": "?"}

    def guesses(server: Server) -> list[int]:  # five wrong secrets, each "from" elsewhere
        return [
            httpx.post(
                f"{server.url}/v1/oauth/token",
                data=form,
                headers={"X-Forwarded-For": f"198.18.0.{i}"},
                timeout=10,
            ).status_code
            for i in range(5)
        ]

    with Server(settings, tmp_path / "plain", rate_limit_token_failures_ip="3/minute") as server:
        assert guesses(server) == [401, 401, 401, 429, 429]
    with Server(
        settings,
        tmp_path / "proxied",
        rate_limit_token_failures_ip="3/minute",
        forwarded_allow_ips="127.0.0.1",
    ) as server:
        assert guesses(server) == [401] * 5
