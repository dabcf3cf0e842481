"""Issue 16 item 3: self-service links by mail.

The link-issuing app gets 202 and never the link; the link arrives by mail (a real SMTP server
on loopback) and opens /me; the form on /me mails a link only to known addresses and answers
byte for byte and (within a generous bound) in the same time otherwise; both rate limits;
the session remembers who started it and its consent changes say so (``session_origin``).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from tests import factories
from tests.mail.helpers import drain, smtp_runtime
from tests.mail.smtpd import SmtpServer
from tests.selfservice.helpers import csrf, link_in_text, mailed_link
from vault.app import create_app
from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence
from vault.consent.models import ConsentEvent
from vault.customers import service as customers_service
from vault.db import reader, transaction
from vault.mail.delivery import Deliverer
from vault.mail.models import MailMessage
from vault.provenance import CLI, Caller
from vault.runtime import Runtime
from vault.selfservice import links, sessions
from vault.selfservice.models import SelfserviceLink, SelfserviceSession

BROWSER = ("198.51.100.20", 41000)


@pytest.fixture
def settings(settings):
    """No answer floor by default (its own tests set one), so the suite stays fast."""
    return settings.model_copy(update={"selfservice_link_request_seconds": 0.0})


@pytest.fixture
def smtpd() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def build(settings) -> Iterator:
    """``build(client_addr, **settings)`` -> (runtime, TestClient) of an app so configured."""
    made: list[tuple[Runtime, TestClient]] = []

    def make(client_addr: tuple[str, int] = BROWSER, **updates: object):
        rt = Runtime.build(settings.model_copy(update=updates))
        tc = TestClient(create_app(rt), raise_server_exceptions=False, client=client_addr)
        tc.__enter__()
        made.append((rt, tc))
        return rt, tc

    yield make
    for rt, tc in made:
        tc.__exit__(None, None, None)
        rt.engine.dispose()


def _count(runtime: Runtime, model) -> int:
    with Session(reader(runtime.engine)) as s:
        n = s.execute(select(func.count()).select_from(model)).scalar_one()
        s.rollback()
    return n


def _rows(runtime: Runtime, stmt) -> list:
    with Session(reader(runtime.engine)) as s:
        rows = list(s.execute(stmt).scalars())
        s.expunge_all()
        s.rollback()
    return rows


def _mail_ids(runtime: Runtime) -> list[uuid.UUID]:
    with Session(reader(runtime.engine)) as s:
        ids = list(s.execute(select(MailMessage.id).order_by(MailMessage.created_at)).scalars())
        s.rollback()
    return ids


# --- the API: 202, the link only in the mail ------------------------------------------------


def test_the_app_gets_202_and_no_link_the_customer_gets_it_by_mail(client, session, runtime, smtpd):
    customer = factories.create_customer(
        session, runtime, email="erika.link@example.de", preferred_language="en"
    )
    app_client, _ = factories.create_client(session, runtime, scopes=["selfservice:issue"])
    headers = {"Authorization": f"Bearer {factories.token(runtime, app_client)}"}
    session.rollback()
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"mail_id", "expires_at"}
    assert "/me/login/" not in r.text
    assert not [v for v in r.headers.values() if "/me/login/" in v]
    assert r.headers["cache-control"] == "no-store"

    assert drain(Deliverer(smtp_runtime(runtime, smtpd.url()))) == 1
    assert [rcpts for _from, rcpts in smtpd.envelopes] == [["erika.link@example.de"]]
    msg = smtpd.messages[0]
    assert msg["Subject"] == "Your link to your data"  # the customer's preferred language
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    path = link_in_text(runtime, text)
    token = path.rsplit("/", 1)[1]
    assert token not in r.text  # the answer held neither the link nor its token
    assert f'href="http://testserver{path}"' in html
    for word in ("welcome", "willkommen", "<img", "<script"):
        assert word not in html.lower()

    opened = client.get(path, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/me"
    me = client.get("/me")
    assert me.status_code == 200 and "Erika" in me.text
    # the session remembers the app that had the link mailed
    with Session(reader(runtime.engine)) as s:
        assert s.execute(select(SelfserviceSession.origin)).scalar_one() == (
            f"client:{app_client.id}"
        )
        s.rollback()


def test_a_customer_without_an_email_address_is_409_and_nothing_is_made(client, session, runtime):
    customer, _ = customers_service.create_customer(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attributes={"first_name": "Otto"},
    )
    session.commit()
    headers = factories.auth_headers(session, runtime, "selfservice:issue")
    session.rollback()
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    assert r.status_code == 409
    assert r.json()["error"] == "customer_has_no_email"
    assert _count(runtime, SelfserviceLink) == 0
    assert _count(runtime, MailMessage) == 0


# --- the form on /me ------------------------------------------------------------------------


def test_the_form_mails_known_addresses_only_and_answers_the_same_otherwise(
    client, session, runtime
):
    customer = factories.create_customer(session, runtime, email="known.kunde@example.de")
    session.rollback()
    form = client.get("/me", headers={"accept-language": "en"})
    assert form.status_code == 200
    assert '<label for="email">Your e-mail address</label>' in form.text
    known = client.post("/me/link", data={"email": " Known.Kunde@Example.DE "})
    unknown = client.post("/me/link", data={"email": "nobody.here@example.de"})
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content  # the same bytes
    assert "Bitte sehen Sie in Ihr E-Mail-Postfach" in known.text
    assert known.headers["cache-control"] == unknown.headers["cache-control"] == "no-store"
    assert "set-cookie" not in known.headers and "set-cookie" not in unknown.headers
    # one mail, to the known customer, whose link opens /me for them
    ids = _mail_ids(runtime)
    assert len(ids) == 1
    path = mailed_link(runtime, ids[0])
    assert _count(runtime, SelfserviceLink) == 1
    assert client.get(path, follow_redirects=False).status_code == 303
    [row] = _rows(runtime, select(SelfserviceSession))
    [link] = _rows(runtime, select(SelfserviceLink))
    assert row.customer_id == customer.id
    assert row.origin == "customer"
    assert link.issued_by == links.FORM


def test_the_form_refuses_what_is_not_an_address_and_other_sites(client, runtime):
    r = client.post("/me/link", data={"email": "not an address"}, headers={"accept-language": "en"})
    assert r.status_code == 422
    assert "Please enter your e-mail address." in r.text and 'aria-invalid="true"' in r.text
    r = client.post(
        "/me/link", data={"email": "a@example.de"}, headers={"sec-fetch-site": "cross-site"}
    )
    assert r.status_code == 403
    assert _count(runtime, MailMessage) == 0


def test_the_form_is_limited_per_address_and_per_client_address(build, session):
    rt, tc = build(rate_limit_link_request_address="2/hour", rate_limit_link_request_ip="4/hour")
    factories.create_customer(session, rt, email="flood.me@example.de")
    session.rollback()
    # per address asked for, from any client address; known and unknown alike
    for target in ("flood.me@example.de", "unknown.target@example.de"):
        answers = []
        for i in range(3):
            with TestClient(tc.app, client=(f"192.0.2.{i + 10}", 40000)) as other:
                answers.append(other.post("/me/link", data={"email": target}))
        assert [a.status_code for a in answers] == [200, 200, 429], target
        assert int(answers[2].headers["retry-after"]) > 0
    assert len(_mail_ids(rt)) == 2  # the third request for the customer was refused
    # per client address, whatever addresses it tries
    codes = [
        tc.post("/me/link", data={"email": f"probe{i}@example.de"}).status_code for i in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]


def test_the_customers_own_link_budget_is_kept_silently(build, session):
    rt, tc = build(rate_limit_link_customer="1/hour")
    factories.create_customer(session, rt, email="budget@example.de")
    session.rollback()
    first = tc.post("/me/link", data={"email": "budget@example.de"})
    second = tc.post("/me/link", data={"email": "budget@example.de"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len(_mail_ids(rt)) == 1


def test_known_and_unknown_addresses_answer_after_the_same_floor(build, session, monkeypatch):
    """Structure: both paths end in the same floor, and the floor runs after the commit (the
    known path's mail is already committed when it waits). Measure: medians within a bound."""
    floor = 0.25
    plenty = "1000/hour"
    rt, tc = build(
        selfservice_link_request_seconds=floor,
        rate_limit_link_request_ip=plenty,
        rate_limit_link_request_address=plenty,
        rate_limit_link_customer=plenty,
    )
    factories.create_customer(session, rt, email="timed@example.de")
    session.rollback()
    seen: list[tuple[float, int]] = []
    real = links.answer_no_sooner_than

    def spy(started: float, seconds: float) -> None:
        seen.append((seconds, _count(rt, MailMessage)))
        real(started, seconds)

    monkeypatch.setattr(links, "answer_no_sooner_than", spy)
    assert tc.post("/me/link", data={"email": "timed@example.de"}).status_code == 200
    assert tc.post("/me/link", data={"email": "untimed@example.de"}).status_code == 200
    assert seen == [(floor, 1), (floor, 1)]  # the known path's mail committed before the wait

    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(12):
        for kind, email in (("known", "timed@example.de"), ("unknown", f"x{i}@example.de")):
            t0 = time.perf_counter()
            r = tc.post("/me/link", data={"email": email})
            times[kind].append(time.perf_counter() - t0)
            assert r.status_code == 200
    known, unknown = (statistics.median(times[k]) for k in ("known", "unknown"))
    assert known >= floor and unknown >= floor
    assert abs(known - unknown) < 0.08, times


# --- session origin in the consent evidence --------------------------------------------------


def test_a_consent_change_in_a_session_started_by_client_x_says_so(client, session, runtime):
    customer = factories.create_customer(session, runtime)
    x, _ = factories.create_client(session, runtime, scopes=["selfservice:issue"], name="App X")
    headers = {"Authorization": f"Bearer {factories.token(runtime, x)}"}
    session.rollback()
    r = client.post(f"/v1/customers/{customer.id}/selfservice-link", headers=headers)
    assert r.status_code == 202
    assert client.get(mailed_link(runtime, r.json()["mail_id"])).status_code == 200
    token = csrf(client)
    for status in ("granted", "withdrawn"):
        r = client.post(
            "/me/consents/personalised_offers", data={"status": status, "csrf_token": token}
        )
        assert r.status_code == 200
    events = _rows(
        runtime,
        select(ConsentEvent)
        .where(ConsentEvent.customer_id == customer.id)
        .order_by(ConsentEvent.seq),
    )
    assert [(e.status, e.evidence["session_origin"]) for e in events] == [
        ("granted", f"client:{x.id}"),
        ("withdrawn", f"client:{x.id}"),
    ]


def test_gpc_refusals_at_sign_in_carry_the_session_origin_too(client, session, runtime):
    customer = factories.create_customer(session, runtime, email="gpc.origin@example.de")
    session.rollback()
    assert client.post("/me/link", data={"email": "gpc.origin@example.de"}).status_code == 200
    path = mailed_link(runtime, _mail_ids(runtime)[0])
    assert client.get(path, headers={"sec-gpc": "1"}, follow_redirects=False).status_code == 303
    events = _rows(runtime, select(ConsentEvent).where(ConsentEvent.customer_id == customer.id))
    assert events and {e.evidence["session_origin"] for e in events} == {"customer"}


@pytest.mark.parametrize(
    ("actor", "origin"),
    [
        ("client:cv_abc", "client:cv_abc"),
        ("staff:st_1", "staff:st_1"),
        ("cli", "cli"),
        ("cli:demo", "cli"),
        (f"customer:{uuid.UUID(int=1)}", "customer"),
    ],
)
def test_origin_of_who_had_the_link_made(actor, origin):
    assert sessions.origin_of(Caller(actor)) == origin
    assert consent_evidence.clean_evidence({"session_origin": origin}) == {"session_origin": origin}


@pytest.mark.parametrize("value", ["someone", "client:", "client:a b", "staff:10.0.0.1", 7])
def test_session_origin_evidence_is_typed(value):
    with pytest.raises(consent_errors.InvalidEvidence):
        consent_evidence.clean_evidence({"session_origin": value})


# --- the magic-link failure budget is charged before the look-up ----------------------------


def test_parallel_wrong_links_are_charged_before_the_look_up(build, monkeypatch):
    _rt, tc = build(rate_limit_login_failures_ip="10/minute")
    calls = 0
    lock = threading.Lock()
    real = sessions.consume_link

    def slow(**kwargs):
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)  # outside the database's lock: every request overlaps the others
        return real(**kwargs)

    monkeypatch.setattr(sessions, "consume_link", slow)
    with ThreadPoolExecutor(25) as pool:
        answers = list(
            pool.map(
                lambda i: tc.get(f"/me/login/{uuid.uuid4().hex}{i}", follow_redirects=False),
                range(25),
            )
        )
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 10 + [429] * 15, codes
    assert calls == 10  # the refused ones never looked a token up


def test_a_good_link_refunds_its_charge(build, session):
    rt, tc = build(rate_limit_login_failures_ip="2/minute")
    customer = factories.create_customer(session, rt)
    session.rollback()
    for _ in range(3):
        with transaction(rt.engine) as s:
            link = sessions.issue_link(
                session=s, settings=rt.settings, customer_id=customer.id, by=CLI
            )
        path = link.url[len(rt.settings.public_url) :]
        assert tc.get(path, follow_redirects=False).status_code == 303
    # three successes spent nothing: two failures still fit before the third is refused
    codes = [tc.get(f"/me/login/{uuid.uuid4().hex}").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
