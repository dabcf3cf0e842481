import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from tests.factories import create_customer, record_consent
from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence
from vault.consent import reads as consent_reads
from vault.consent import rebuild as consent_rebuild
from vault.consent import rules as consent_rules
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.models import ConsentEvent, ConsentState
from vault.policy.errors import UnknownPurpose

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _purpose(runtime, pid, **changes):
    return runtime.policy.purposes[pid].model_copy(update=changes)


@dataclass
class S:
    status: str
    version: int = 1
    granted_at: datetime | None = T0
    decided_at: datetime = T0


# --- the pure decision rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "changes", "now", "expected"),
    [
        (None, {}, T0, "none"),
        (S("granted"), {}, T0, "granted"),
        (S("withdrawn", granted_at=None), {}, T0, "withdrawn"),
        (S("refused", granted_at=None), {}, T0, "refused"),
        (
            S("pending_confirmation", granted_at=None),
            {"double_opt_in": True},
            T0,
            "pending_confirmation",
        ),
        (S("granted"), {"double_opt_in": True}, T0, "pending_confirmation"),
        (S("confirmed"), {"double_opt_in": True}, T0, "granted"),
        # TTL counts from granted_at; the last instant still counts
        (S("granted"), {"consent_ttl_days": 10}, T0 + timedelta(days=10), "granted"),
        (S("granted"), {"consent_ttl_days": 10}, T0 + timedelta(days=10, seconds=1), "expired"),
        (S("granted"), {"consent_ttl_days": None}, T0 + timedelta(days=9999), "granted"),
        # version rule
        (S("granted", version=1), {"version": 2, "reconsent": True}, T0, "reconsent_required"),
        (S("granted", version=1), {"version": 2, "reconsent": False}, T0, "granted"),
        (S("granted", version=2), {"version": 2, "reconsent": True}, T0, "granted"),
        (
            S("withdrawn", version=1, granted_at=None),
            {"version": 2, "reconsent": True},
            T0,
            "withdrawn",
        ),
        (S("expired", granted_at=None), {}, T0, "expired"),
    ],
)
def test_effective_status(runtime, state, changes, now, expected):
    base = {"double_opt_in": False, "consent_ttl_days": None, "version": 1, "reconsent": False}
    purpose = _purpose(runtime, "personalised_offers", **{**base, **changes})
    assert consent_rules.effective_status(state, purpose, now) == expected


def test_expires_at_only_for_grants(runtime):
    purpose = _purpose(runtime, "personalised_offers", consent_ttl_days=30)
    assert consent_rules.expires_at(S("granted"), purpose) == T0 + timedelta(days=30)
    assert consent_rules.expires_at(S("withdrawn", granted_at=None), purpose) is None


@dataclass
class E:
    status: str
    occurred_at: datetime
    purpose_version: int = 1
    id: uuid.UUID = None  # type: ignore[assignment]

    def __post_init__(self):
        self.id = self.id or uuid.uuid4()


def test_apply_keeps_newer_decision_against_late_event():
    grant = E("granted", T0)
    decision, applied = consent_rules.apply(None, grant)
    assert applied and decision.granted_at == T0 and decision.event_id == grant.id
    late = E("withdrawn", T0 - timedelta(hours=1))
    after, applied = consent_rules.apply(decision, late)
    assert not applied and after == decision
    tie = E("withdrawn", T0)
    after, applied = consent_rules.apply(decision, tie)
    assert applied and after.status == "withdrawn" and after.granted_at is None


# --- evidence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
    ],
)
def test_ip_addresses_are_truncated(ip, expected):
    assert consent_evidence.clean_evidence({"ip": ip, "gpc": True}) == {"ip": expected, "gpc": True}


@pytest.mark.parametrize(
    ("evidence", "error"),
    [
        ({"email": "x"}, consent_errors.EvidenceContainsContactData),
        ({"customer_phone": "x"}, consent_errors.EvidenceContainsContactData),
        ({"first_name": "Erika"}, consent_errors.EvidenceContainsContactData),
        ({"note": "write to erika@example.de"}, consent_errors.EvidenceContainsContactData),
        ({"note": "+49 30 1234567"}, consent_errors.EvidenceContainsContactData),
        ({"nested": {"a": 1}}, consent_errors.InvalidEvidence),
        ({"ip": "300.1.1.1"}, consent_errors.InvalidEvidence),
        ({"ua": "x" * 600}, consent_errors.InvalidEvidence),
        ({f"k{i}": i for i in range(21)}, consent_errors.InvalidEvidence),
    ],
)
def test_evidence_rejects_contact_data_and_structure(evidence, error):
    with pytest.raises(error):
        consent_evidence.clean_evidence(evidence)


# --- recording ----------------------------------------------------------------------------


def _events(session, customer_id):
    rows = list(
        session.execute(
            select(ConsentEvent)
            .where(ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.seq)
        ).scalars()
    )
    session.rollback()
    return rows


def test_record_grant_writes_event_and_state(session, runtime):
    customer = create_customer(session, runtime)
    result = record_consent(
        session, runtime, customer.id, "personalised_offers", evidence={"ip": "10.1.2.3"}
    )
    assert result.applied and result.confirmation_token is None
    assert result.state.status == "granted" and result.state.granted_at is not None
    [event] = _events(session, customer.id)
    assert event.status == "granted" and event.evidence == {"ip": "10.1.2.0/24"}
    assert event.purpose_version == 1 and len(event.notice_hash) == 64
    assert event.receipt == result.receipt and result.receipt.count(".") == 2


@pytest.mark.parametrize(
    ("purpose", "error"),
    [
        ("order_fulfilment", consent_errors.ConsentNotApplicable),
        ("analytics", consent_errors.ConsentNotApplicable),
        ("astrology", UnknownPurpose),
    ],
)
def test_only_consent_purposes_take_consent(session, runtime, purpose, error):
    customer = create_customer(session, runtime)
    with pytest.raises(error):
        record_consent(session, runtime, customer.id, purpose)
    session.rollback()
    assert _events(session, customer.id) == []


def test_occurred_at_in_the_future_beyond_skew_is_refused(session, runtime):
    customer = create_customer(session, runtime)
    now = datetime.now(UTC)
    with pytest.raises(consent_errors.OccurredInFuture):
        record_consent(
            session, runtime, customer.id, "personalised_offers",
            occurred_at=now + timedelta(minutes=2, seconds=5), now=now,
        )  # fmt: skip
    session.rollback()
    ok = record_consent(
        session, runtime, customer.id, "personalised_offers",
        occurred_at=now + timedelta(minutes=1, seconds=55), now=now,
    )  # fmt: skip
    assert ok.applied


def test_withdrawal_of_never_given_consent_is_recorded(session, runtime):
    customer = create_customer(session, runtime)
    result = record_consent(session, runtime, customer.id, "third_party_ads", "withdrawn")
    assert result.applied and result.event.status == "withdrawn"
    states = consent_store.effective_states(
        session=session, policy=runtime.policy, customer_id=customer.id, now=datetime.now(UTC)
    )
    assert states["third_party_ads"].status == "withdrawn"
    assert states["push_notifications"].status == "none"
    assert "order_fulfilment" not in states  # only consent-based purposes


def test_late_event_is_kept_but_does_not_override(session, runtime):
    customer = create_customer(session, runtime)
    now = datetime.now(UTC)
    record_consent(session, runtime, customer.id, "personalised_offers", "withdrawn", now=now)
    late = record_consent(
        session, runtime, customer.id, "personalised_offers", "granted",
        channel="store", occurred_at=now - timedelta(days=2), now=now + timedelta(seconds=1),
    )  # fmt: skip
    assert not late.applied and late.state.status == "withdrawn"
    events = _events(session, customer.id)
    assert [e.status for e in events] == ["withdrawn", "granted"]
    state = session.get(ConsentState, (customer.id, "personalised_offers"))
    assert state.status == "withdrawn" and state.event_id == events[0].id


def test_double_opt_in_token_is_single_use_and_expires(session, runtime):
    customer = create_customer(session, runtime)
    now = datetime.now(UTC)
    pending = record_consent(session, runtime, customer.id, "newsletter", now=now)
    assert pending.event.status == "pending_confirmation" and pending.confirmation_token
    kw = dict(
        session=session, policy=runtime.policy, signer=runtime.signer,
        settings=runtime.settings, recorded_by="client:test",
    )  # fmt: skip
    with pytest.raises(consent_errors.ConfirmationTokenExpired):
        consent_service.confirm(
            token=pending.confirmation_token, now=now + timedelta(days=7, seconds=1), **kw
        )
    session.rollback()
    done = consent_service.confirm(
        token=pending.confirmation_token, now=now + timedelta(hours=1), **kw
    )
    session.commit()
    assert done.event.status == "confirmed" and done.state.granted_at == now + timedelta(hours=1)
    with pytest.raises(consent_errors.ConfirmationTokenUsed):
        consent_service.confirm(
            token=pending.confirmation_token, now=now + timedelta(hours=2), **kw
        )
    session.rollback()
    with pytest.raises(consent_errors.ConfirmationTokenNotFound):
        consent_service.confirm(token="x" * 43, **kw)


def test_confirmation_after_withdrawal_is_superseded(session, runtime):
    customer = create_customer(session, runtime)
    pending = record_consent(session, runtime, customer.id, "newsletter")
    record_consent(session, runtime, customer.id, "newsletter", "withdrawn")
    with pytest.raises(consent_errors.ConfirmationSuperseded):
        consent_service.confirm(
            session=session, policy=runtime.policy, signer=runtime.signer,
            settings=runtime.settings, recorded_by="client:test",
            token=pending.confirmation_token,
        )  # fmt: skip


# --- as_of: table-driven over a 6-event history -----------------------------------------

H = [T0 + timedelta(days=d) for d in (0, 10, 20, 30, 40, 50)]

# (occurred_at, purpose, status); recorded in this order. Event 5 is a late store sync.
HISTORY = [
    (H[0], "personalised_offers", "granted"),
    (H[1], "third_party_ads", "refused"),
    (H[2], "personalised_offers", "withdrawn"),
    (H[3], "personalised_offers", "granted"),
    (H[4], "third_party_ads", "granted"),
    (H[2] + timedelta(days=5), "personalised_offers", "withdrawn"),  # late: older than H[3]
]


@pytest.mark.parametrize(
    ("as_of", "offers", "ads"),
    [
        (H[0] - timedelta(seconds=1), "none", "none"),
        (H[0], "granted", "none"),
        (H[0] + timedelta(days=5), "granted", "none"),
        (H[1] + timedelta(hours=1), "granted", "refused"),
        (H[2] + timedelta(days=1), "withdrawn", "refused"),
        # the late withdrawal occurred here, so as of then it is the decision
        (H[2] + timedelta(days=6), "withdrawn", "refused"),
        (H[3] + timedelta(seconds=1), "granted", "refused"),
        (H[4], "granted", "granted"),
        # personalised_offers has a 365-day TTL counted from H[3]
        (H[3] + timedelta(days=365), "granted", "granted"),
        (H[3] + timedelta(days=366), "expired", "granted"),
    ],
)
def test_as_of_between_events(session, runtime, as_of, offers, ads):
    customer = create_customer(session, runtime)
    recorded = H[5] + timedelta(days=1)
    for occurred_at, purpose, status in HISTORY:
        record_consent(
            session, runtime, customer.id, purpose, status, occurred_at=occurred_at, now=recorded
        )
    states = consent_reads.states_as_of(
        session=session,
        policy=runtime.policy,
        customer_id=customer.id,
        as_of=as_of,
        now=as_of + timedelta(days=400),
    )
    assert states["personalised_offers"].status == offers
    assert states["third_party_ads"].status == ads
    session.rollback()
    # and the live projection equals the replay of the whole ledger
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []


# --- the database refuses to rewrite the ledger -------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_event SET status = 'granted'",
        "DELETE FROM consent_event",
    ],
)
def test_ledger_is_append_only_in_the_database(session, runtime, backend, sql):
    customer = create_customer(session, runtime)
    record_consent(session, runtime, customer.id, "third_party_ads", "withdrawn")
    with runtime.engine.connect() as conn, pytest.raises(DatabaseError) as info:
        conn.execute(text(sql))
    assert "append-only" in str(info.value)
    assert [e.status for e in _events(session, customer.id)] == ["withdrawn"]


def test_ledger_cannot_be_truncated_on_postgres(session, runtime, backend):
    if backend != "postgres":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    customer = create_customer(session, runtime)
    record_consent(session, runtime, customer.id, "third_party_ads", "withdrawn")
    with runtime.engine.connect() as conn, pytest.raises(DatabaseError) as info:
        conn.execute(text("TRUNCATE consent_event CASCADE"))
    assert "append-only" in str(info.value)


# --- rebuild ------------------------------------------------------------------------------


def test_rebuild_detects_and_fixes_a_hand_edited_projection(session, runtime):
    a = create_customer(session, runtime)
    b = create_customer(session, runtime)
    record_consent(session, runtime, a.id, "personalised_offers")
    record_consent(session, runtime, b.id, "third_party_ads", "refused")
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
    session.rollback()
    session.execute(text("UPDATE consent_state SET status = 'granted' WHERE status = 'refused'"))
    session.execute(text("DELETE FROM consent_state WHERE purpose = 'personalised_offers'"))
    session.commit()
    report = consent_rebuild.rebuild(session=session, fix=False)
    session.rollback()
    assert {(d.customer_id, d.purpose) for d in report.differences} == {
        (a.id, "personalised_offers"),
        (b.id, "third_party_ads"),
    }
    assert report.events == 2
    fixed = consent_rebuild.rebuild(session=session, fix=True)
    session.commit()
    assert fixed.fixed and len(fixed.differences) == 2
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
    state = session.get(ConsentState, (b.id, "third_party_ads"))
    assert state.status == "refused"


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_grant_and_withdraw_leave_state_equal_to_replay(session, runtime, backend):
    customer = create_customer(session, runtime)
    errors: list[BaseException] = []
    start = threading.Barrier(20)
    base = datetime.now(UTC)

    def write(i: int) -> None:
        try:
            start.wait()
            with Session(runtime.engine, expire_on_commit=False) as s:
                consent_service.record_event(
                    session=s,
                    policy=runtime.policy,
                    signer=runtime.signer,
                    settings=runtime.settings,
                    customer_id=customer.id,
                    purpose="personalised_offers",
                    status="granted" if i % 2 else "withdrawn",
                    channel="app",
                    recorded_by=f"client:t{i}",
                    # spread occurred_at so some writers arrive late
                    occurred_at=base - timedelta(milliseconds=(i * 7919) % 1000),
                )
                s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    events = _events(session, customer.id)
    assert len(events) == 20
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.seq))
    expected = consent_rules.replay(ordered)
    state = session.get(ConsentState, (customer.id, "personalised_offers"))
    session.rollback()
    assert state is not None and expected is not None
    assert (state.status, state.event_id, state.decided_at, state.granted_at) == (
        expected.status,
        expected.event_id,
        expected.decided_at,
        expected.granted_at,
    )
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
