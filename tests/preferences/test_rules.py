"""The preference rules combined with the consent decision, table-driven: every reason is
reachable, from the pure functions and through the database on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import auth_headers, create_customer, record_consent
from tests.preferences.helpers import change, report_contacts
from vault.policy.decision import (
    CONTACT_REASONS,
    ContactFacts,
    decide,
    decide_contact,
    window_start,
)

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday
BEFORE_THIS_WEEK = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # Sunday: last ISO week


@pytest.fixture
def offers(runtime):
    return runtime.policy.purposes["personalised_offers"]


CASES = [
    # (consent status, facts, contact_channel, topic, expected reason or None)
    ("granted", ContactFacts(), "email", None, None),
    (
        "granted",
        ContactFacts(channels_off=frozenset({"email"})),
        "email",
        None,
        "contact_channel_opted_out",
    ),
    ("granted", ContactFacts(channels_off=frozenset({"email"})), "push", None, None),
    ("granted", ContactFacts(channels_off=frozenset({"email"})), None, None, None),
    (
        "granted",
        ContactFacts(topics_off=frozenset({"loyalty"})),
        "email",
        "loyalty",
        "topic_opted_out",
    ),
    ("granted", ContactFacts(topics_off=frozenset({"loyalty"})), "email", "weekly_offers", None),
    ("granted", ContactFacts(paused_until=NOW + timedelta(days=1)), "email", None, "paused"),
    ("granted", ContactFacts(paused_until=NOW - timedelta(seconds=1)), "email", None, None),
    (
        "granted",
        ContactFacts(last_contact=NOW - timedelta(hours=1)),
        "push",
        None,
        "frequency_cap_reached",
    ),  # default: weekly
    ("granted", ContactFacts(last_contact=BEFORE_THIS_WEEK), "push", None, None),
    (
        "granted",
        ContactFacts(frequency="quarterly", last_contact=BEFORE_THIS_WEEK),
        "push",
        None,
        "frequency_cap_reached",
    ),
    (
        "granted",
        ContactFacts(frequency="monthly", last_contact=BEFORE_THIS_WEEK),
        "push",
        None,
        None,
    ),
    (
        "granted",
        ContactFacts(frequency="monthly", last_contact=datetime(2026, 11, 30, 22, 59, tzinfo=UTC)),
        "push",
        None,
        None,
    ),  # 23:59 on 30 November in Berlin: last month
    # the first failure wins, in CONTACT_REASONS order
    (
        "granted",
        ContactFacts(
            channels_off=frozenset({"email"}),
            topics_off=frozenset({"loyalty"}),
            paused_until=NOW + timedelta(days=1),
            last_contact=NOW,
        ),
        "email",
        "loyalty",
        "contact_channel_opted_out",
    ),
    (
        "granted",
        ContactFacts(
            topics_off=frozenset({"loyalty"}),
            paused_until=NOW + timedelta(days=1),
            last_contact=NOW,
        ),
        "email",
        "loyalty",
        "topic_opted_out",
    ),
    (
        "granted",
        ContactFacts(paused_until=NOW + timedelta(days=1), last_contact=NOW),
        "email",
        None,
        "paused",
    ),
    # the consent decision comes first: the filters never widen it
    ("withdrawn", ContactFacts(), "email", None, "consent_withdrawn"),
    ("none", ContactFacts(paused_until=NOW + timedelta(days=1)), "email", None, "consent_missing"),
]


@pytest.mark.parametrize(("consent", "facts", "channel", "topic", "reason"), CASES)
def test_the_contact_rules_after_the_consent_decision(
    offers, consent, facts, channel, topic, reason
):
    d = decide(
        purpose=offers,
        client_purposes={offers.id},
        customer_status="active",
        objections=(),
        consent_status=consent,
    )
    if d.allowed:
        d = decide_contact(
            purpose=offers, facts=facts, contact_channel=channel, topic=topic, now=NOW
        )
    assert d.allowed is (reason is None)
    assert d.reason == reason
    if reason is not None:
        assert d.detail != "Access denied."  # every reason has its sentence


def test_every_contact_reason_is_in_the_table():
    assert {c[-1] for c in CASES} >= set(CONTACT_REASONS)


@pytest.mark.parametrize(
    ("frequency", "now", "start"),
    [
        ("weekly", NOW, datetime(2026, 11, 30, 0, 0, tzinfo=UTC) - timedelta(hours=1)),
        ("monthly", NOW, datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),
        ("quarterly", NOW, datetime(2026, 9, 30, 22, 0, tzinfo=UTC)),  # CEST in October
        (
            "monthly",
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # already December in Berlin
            datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        ),
    ],
)
def test_windows_are_calendar_windows_in_berlin(frequency, now, start):
    assert window_start(frequency, now) == start


# --- the same reasons through the database and both doors (read and export) ----------------

DB_CASES = [
    ("contact_channel_opted_out", {"contact_channels": {"email": False}}, "email", None, False),
    (
        "topic_opted_out",
        {"topics": {"personalised_offers": {"loyalty": False}}},
        "email",
        "loyalty",
        False,
    ),
    ("paused", {"paused_until": "tomorrow"}, "push", None, False),
    (
        "frequency_cap_reached",
        {"frequency": {"personalised_offers": "monthly"}},
        "push",
        None,
        True,
    ),
    (None, {"topics": {"personalised_offers": {"loyalty": False}}}, "email", "weekly_offers", True),
]


@pytest.mark.parametrize(("reason", "prefs", "channel", "topic", "contacted"), DB_CASES)
def test_each_reason_through_the_read_and_the_export(
    client, session, runtime, reason, prefs, channel, topic, contacted
):
    cid = create_customer(session, runtime).id
    record_consent(session, runtime, cid, "personalised_offers")
    if prefs.get("paused_until") == "tomorrow":
        prefs = {"paused_until": datetime.now(UTC) + timedelta(days=1)}
    change(session, runtime, cid, **prefs)
    reader = auth_headers(session, runtime, "data:read", purposes=["personalised_offers"])
    if contacted:
        sender = auth_headers(session, runtime, "contacts:write", purposes=["personalised_offers"])
        line = {
            "customer_id": str(cid),
            "purpose": "personalised_offers",
            "contact_channel": "email",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        assert report_contacts(client, sender, [line])["accepted"] == 1
        reason = reason or "frequency_cap_reached"  # one contact this week caps weekly too
    params = {"purpose": "personalised_offers", "contact_channel": channel}
    if topic:
        params["topic"] = topic
    r = client.get(f"/v1/customers/{cid}/data", headers=reader, params=params)
    if reason is None:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 403 and r.json()["error"] == reason, r.text
    export = {k: v for k, v in params.items() if k != "purpose"}
    r = client.get("/v1/purposes/personalised_offers/audience", headers=reader, params=export)
    assert r.status_code == 200
    assert (str(cid) in r.text) is (reason is None)


def test_the_single_read_facts_equal_the_batch_facts(client, session, runtime):
    """The gated read's one-statement facts and the export's batch facts agree."""
    from vault.preferences import store as preferences_store

    offers = runtime.policy.purposes["personalised_offers"]
    cid = create_customer(session, runtime).id
    bare = create_customer(session, runtime).id
    change(
        session,
        runtime,
        cid,
        contact_channels={"push": False},
        topics={"personalised_offers": {"loyalty": False}},
        frequency={"personalised_offers": "monthly"},
        paused_until=datetime.now(UTC) + timedelta(days=3),
    )
    sender = auth_headers(session, runtime, "contacts:write", purposes=["personalised_offers"])
    line = {
        "customer_id": str(cid),
        "purpose": "personalised_offers",
        "contact_channel": "push",
        "sent_at": "2026-01-05T09:00:00+00:00",
    }
    assert report_contacts(client, sender, [line])["accepted"] == 1
    session.rollback()
    one = preferences_store.contact_facts_of_one(session, cid, offers)
    batch = preferences_store.contact_facts(session, [cid, bare], offers)
    assert one == batch[cid]
    assert one.channels_off == {"push"} and one.topics_off == {"loyalty"}
    assert one.frequency == "monthly" and one.paused_until is not None
    assert one.last_contact == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert preferences_store.contact_facts_of_one(session, bare, offers) == ContactFacts()
    assert bare not in batch
