"""The privacy office's queries: the request queue, one customer's rights, rates by purpose,
touchpoint and week, delivery health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from tests.factories import create_customer, record_consent
from vault.dsr import requests as dsr_requests
from vault.dsr import rights as dsr_rights
from vault.events import outbox as events_outbox
from vault.events.models import OutboxEvent, Webhook, WebhookDelivery
from vault.mail.models import MailMessage
from vault.preferences import service as preferences_service
from vault.preferences.models import PreferenceChoice, PreferenceEvent
from vault.provenance import Caller
from vault.staff import office

STAFF = Caller("staff:test-officer")


def _request(session, runtime, customer_id, kind, days_ago):
    now = datetime.now(UTC)
    row = dsr_requests.create_request(
        session=session,
        customer_id=customer_id,
        kind=kind,
        by=STAFF,
        received_at=now - timedelta(days=days_ago),
        now=now,
    )
    session.commit()
    return row.id


def test_the_queue_lists_overdue_requests_first_and_marks_them(session, runtime):
    a = create_customer(session, runtime)
    b = create_customer(session, runtime)
    fresh = _request(session, runtime, a.id, "access", 2)
    late = _request(session, runtime, b.id, "erasure", 45)
    later = _request(session, runtime, a.id, "objection", 33)
    closed = _request(session, runtime, b.id, "rectification", 50)
    dsr_requests.close_request(
        session=session,
        envelope=runtime.envelope,
        request_uuid=closed,
        status="completed",
        by=STAFF,
    )
    session.commit()
    now = datetime.now(UTC)
    queue = office.request_queue(session=session, now=now)
    assert [q.id for q in queue] == [late, later, fresh]  # oldest deadline first, closed left out
    assert [q.overdue for q in queue] == [True, True, False]
    assert queue[0].days < queue[1].days < 0 < queue[2].days
    everything = office.request_queue(session=session, now=now, status=None)
    assert [q.id for q in everything] == [late, later, fresh, closed]  # closed: not overdue


def test_the_customer_view_shows_rights_and_requests(session, runtime):
    c = create_customer(session, runtime)
    rid = _request(session, runtime, c.id, "restriction", 1)
    dsr_rights.restrict(
        session=session,
        customer_id=c.id,
        by=STAFF,
        envelope=runtime.envelope,
        reason="accuracy_contested",
        note="Anruf vom 2. Dezember",
    )
    dsr_rights.set_legal_hold(
        session=session,
        envelope=runtime.envelope,
        customer_id=c.id,
        reason="tax_retention",
        by=STAFF,
    )
    session.commit()
    view = office.customer_view(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=c.id,
        now=datetime.now(UTC),
    )
    assert view["rights"]["status"] == "restricted"
    assert view["rights"]["restriction_note"] == "Anruf vom 2. Dezember"
    assert view["rights"]["legal_hold"] is True
    assert [(q.id, q.status) for q in view["requests"]] == [
        (rid, "completed")
    ]  # the restriction closed it
    assert "direct_marketing" in view["objection_scopes"]
    assert "email" in view["stored_attributes"]


def test_rates_count_each_purpose_touchpoint_and_week(session, runtime):
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)  # a Wednesday
    c1, c2, c3 = (create_customer(session, runtime) for _ in range(3))
    monday = datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC)
    record_consent(
        session, runtime, c1.id, "personalised_offers", channel="store", occurred_at=monday
    )
    record_consent(
        session,
        runtime,
        c2.id,
        "personalised_offers",
        "refused",
        channel="web",
        occurred_at=monday - timedelta(seconds=2),  # Sunday: the week before
    )
    record_consent(
        session, runtime, c3.id, "third_party_ads", channel="call_center", occurred_at=monday
    )
    record_consent(
        session,
        runtime,
        c3.id,
        "third_party_ads",
        "withdrawn",
        channel="web",
        occurred_at=now - timedelta(days=20 * 7),  # outside a 12-week window
    )
    rates = office.consent_rates(session=session, policy=runtime.policy, now=now, weeks=12)
    assert rates.until.isoformat() == "2026-12-07" and rates.since.isoformat() == "2026-09-14"
    by_purpose = dict(rates.by_purpose)
    assert by_purpose["personalised_offers"] == {"granted": 1, "refused": 1}
    assert by_purpose["third_party_ads"] == {"granted": 1}
    assert by_purpose["newsletter"] == {}  # listed, with nothing counted
    assert dict(rates.by_channel) == {
        "web": {"refused": 1},
        "store": {"granted": 1},
        "call_center": {"granted": 1},
    }
    weeks = dict(rates.by_week)
    assert weeks[monday.date()] == {"granted": 2}
    assert weeks[(monday - timedelta(days=7)).date()] == {"refused": 1}
    assert sum(1 for counts in weeks.values() if counts) == 2
    only = office.consent_rates(
        session=session, policy=runtime.policy, now=now, purpose="third_party_ads"
    )
    assert dict(only.by_channel) == {"call_center": {"granted": 1}}
    assert dict(only.by_purpose)["personalised_offers"] == {"granted": 1, "refused": 1}


def test_delivery_health_counts_states_and_lists_failures(session, runtime):
    c = create_customer(session, runtime)
    now = datetime.now(UTC)
    events_outbox.emit(session=session, type="customer.updated", customer_id=c.id, data={}, now=now)
    session.flush()
    event = session.exec(select(OutboxEvent).order_by(OutboxEvent.seq.desc())).first()
    hook = Webhook(
        url="https://crm.example.com/hooks/secret-token?x=1",
        events="customer.updated",
        secret_ciphertext=b"x",
        created_by="client:test",
    )
    session.add(hook)
    session.flush()
    session.add_all(
        [
            WebhookDelivery(
                webhook_id=hook.id,
                event_seq=event.seq,
                customer_id=c.id,
                status="dead",
                attempts=8,
                last_attempt_at=now - timedelta(minutes=5),
                last_status_code=500,
                last_error="http_500",
                created_at=now - timedelta(hours=3),
            ),
        ]
    )
    session.add(
        MailMessage(
            customer_id=c.id,
            template="selfservice_link",
            language="de",
            status="bounced",
            message_ciphertext=b"sealed",
            attempts=1,
            last_error="smtp_550",
            last_attempt_at=now - timedelta(minutes=1),
            created_at=now - timedelta(hours=1),
        )
    )
    session.add(
        MailMessage(
            customer_id=c.id,
            template="doi_confirmation",
            language="de",
            status="pending",
            message_ciphertext=b"sealed",
            created_at=now - timedelta(hours=2),
        )
    )
    session.commit()
    health = office.delivery_health(session=session)
    hooks, mail = health["webhooks"], health["mail"]
    assert hooks.counts["dead"] == 1 and hooks.counts["undispatched"] >= 1
    assert hooks.oldest_open is None  # the only delivery is dead, not waiting
    assert hooks.oldest_undispatched is not None
    [failure] = hooks.failures
    assert failure.host == "crm.example.com"  # never the path or query of the URL
    assert (failure.status, failure.last_error, failure.event_type) == (
        "dead",
        "http_500",
        "customer.updated",
    )
    assert mail.counts["bounced"] == 1 and mail.counts["pending"] == 1
    assert abs((mail.oldest_open - (now - timedelta(hours=2))).total_seconds()) < 1
    assert [(m.template, m.last_error) for m in mail.failures] == [("selfservice_link", "smtp_550")]


def _prefs(session, runtime, customer_id, when, channel="web", **change):
    preferences_service.change(
        session=session,
        policy=runtime.policy,
        customer_id=customer_id,
        change=change,
        channel=channel,
        by=STAFF,
        actor="staff:test-officer" if channel == "call_center" else "customer",
        now=when,
    )
    session.commit()


def test_preference_rates_count_topics_and_changes_as_the_rows_say(session, runtime):
    now = datetime.now(UTC)
    this_week = now  # the change is made at the instant the rates are read: same week
    last_week = now - timedelta(days=7)
    a, b, c, d = (create_customer(session, runtime) for _ in range(4))
    for customer in (a, b, d):
        record_consent(session, runtime, customer.id, "personalised_offers")
    # a: web, this week, one topic off; b: call centre, last week, topic off and frequency;
    # c: no grant, switches a topic off (outside the population) and channels and pause;
    # d: granted, never chose: every topic on
    off = {"personalised_offers": {"weekly_offers": False}}
    _prefs(session, runtime, a.id, this_week, topics=off)
    _prefs(
        session,
        runtime,
        b.id,
        last_week,
        channel="call_center",
        topics={"personalised_offers": {"loyalty": False, "weekly_offers": True}},
        frequency={"personalised_offers": "monthly"},
    )
    _prefs(
        session,
        runtime,
        c.id,
        this_week,
        channel="app",
        topics={"personalised_offers": {"weekly_offers": False}},
        contact_channels={"push": False},
        paused_until=now + timedelta(days=30),
    )
    _prefs(session, runtime, c.id, this_week, channel="app", paused_until=None)
    prefs = office.preference_rates(session=session, policy=runtime.policy, now=now, weeks=4)
    topics = dict(prefs.by_topic)
    assert dict(topics["personalised_offers"]) == {
        "weekly_offers": {"on": 2, "off": 1},  # b switched back on, c has no grant
        "loyalty": {"on": 2, "off": 1},
    }
    assert [n for _, n in topics["newsletter"]] == [{"on": 0, "off": 0}] * 4  # nobody confirmed
    # the same, counted from the rows directly
    granted = {a.id, b.id, d.id}
    choices = session.execute(select(PreferenceChoice)).scalars().all()
    for tid, counts in topics["personalised_offers"]:
        off = {
            x.customer_id
            for x in choices
            if (x.purpose, x.kind, x.name, x.value) == ("personalised_offers", "topic", tid, "off")
        } & granted
        assert counts == {"on": len(granted) - len(off), "off": len(off)}
    assert dict(prefs.by_channel) == {
        "web": {"topics": 1},
        "call_center": {"topics": 1, "frequency": 1},
        "app": {"topics": 1, "contact_channels": 1, "paused_until": 2},
    }
    events = session.execute(select(PreferenceEvent)).scalars().all()
    assert sum(sum(v.values()) for _, v in prefs.by_channel) == sum(len(e.change) for e in events)
    weeks = dict(prefs.by_week)
    assert len(weeks) == 4
    assert weeks[office.consent_stats.week_start(now)] == {
        "topics": 2,
        "contact_channels": 1,
        "paused_until": 2,
    }
    assert weeks[office.consent_stats.week_start(last_week)] == {"topics": 1, "frequency": 1}
    # one purpose: its topics and frequency only; channels and pause concern every purpose
    only = office.preference_rates(
        session=session, policy=runtime.policy, now=now, weeks=4, purpose="newsletter"
    )
    assert dict(only.by_channel) == {"app": {"contact_channels": 1, "paused_until": 2}}
    short = office.preference_rates(session=session, policy=runtime.policy, now=now, weeks=1)
    assert "call_center" not in dict(short.by_channel)  # last week is outside a 1-week window
