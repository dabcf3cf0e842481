"""Recording and confirming consent: the ledger, the projection and the database's guard."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from tests.factories import create_customer, record_consent
from vault.consent import errors as consent_errors
from vault.consent import rebuild as consent_rebuild
from vault.consent import rules as consent_rules
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.models import ConsentEvent, ConsentState
from vault.policy.errors import UnknownPurpose
from vault.provenance import Caller

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
    pending = record_consent(
        session, runtime, customer.id, "newsletter", now=now, token_to_caller=True
    )
    assert pending.event.status == "pending_confirmation" and pending.confirmation_token
    kw = dict(
        session=session, policy=runtime.policy, signer=runtime.signer,
        settings=runtime.settings, by=Caller("client:confirmer"),
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
    pending = record_consent(session, runtime, customer.id, "newsletter", token_to_caller=True)
    record_consent(session, runtime, customer.id, "newsletter", "withdrawn")
    with pytest.raises(consent_errors.ConfirmationSuperseded):
        consent_service.confirm(
            session=session, policy=runtime.policy, signer=runtime.signer,
            settings=runtime.settings, by=Caller("client:other"), token=pending.confirmation_token,
        )  # fmt: skip


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
                    by=Caller(f"client:t{i}"),
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
