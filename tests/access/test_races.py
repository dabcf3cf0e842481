"""A change committed between the gated read's two statements (PostgreSQL gives each statement
its own snapshot). Regression: an erasure landing there answered 200 with no attributes, and an
audience export listed the customer with empty attributes (tests/hardening/test_concurrency_pg)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.factories import create_customer, record_consent
from vault.access import service, store
from vault.audit.models import AuditEvent
from vault.auth.service import Principal
from vault.crypto.keys import KeyMaterial
from vault.crypto.signing import Signer
from vault.dsr import erasure as dsr_erasure
from vault.dsr import rights as dsr_rights
from vault.provenance import Caller

PURPOSE = "personalised_offers"


def _principal() -> Principal:
    return Principal(
        client_id="racer", scopes=frozenset({"data:read"}), purposes=frozenset({PURPOSE})
    )


@pytest.fixture
def between_statements(backend, runtime, monkeypatch):
    """Run ``change(customer_id)`` in its own committed transaction right after the read's
    first statement."""
    if backend != "postgres":
        pytest.skip("SQLite reads in one snapshot; the write lock keeps writers out meanwhile")

    def install(change):
        first = store.customer_for_purpose

        def then_change(conn, customer_id, purpose):
            row = first(conn, customer_id, purpose)
            with Session(runtime.engine) as other:
                change(other, customer_id)
                other.commit()
            return row

        monkeypatch.setattr(store, "customer_for_purpose", then_change)

    return install


# certificates signed under throw-away keys, no journal: these tests are about the race
_NOTARY = dsr_erasure.Notary(
    Signer(KeyMaterial({"k1": bytes(32)}, "k1", bytes(32), bytes(32))), "test", None
)


def _erase(session, customer_id):
    dsr_erasure.erase(session=session, customer_id=customer_id, by=Caller("cli"), notary=_NOTARY)


def _restrict(session, customer_id):
    dsr_rights.restrict(session=session, customer_id=customer_id, by=Caller("cli"))


@pytest.mark.parametrize(
    ("change", "reason"), [(_erase, "customer_erased"), (_restrict, "restricted")]
)
def test_a_read_racing_a_change_denies_and_audits(
    runtime, session, between_statements, change, reason
):
    c = create_customer(session, runtime, first_name="Erika", postal_code="10115")
    record_consent(session, runtime, c.id, PURPOSE)
    session.rollback()
    between_statements(change)
    with Session(runtime.engine) as s:
        result = service.read(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            principal=_principal(),
            customer_id=c.id,
            purpose=runtime.policy.purposes[PURPOSE],
            requested=None,
            now=datetime.now(UTC),
        )
        s.commit()
    assert not result.decision.allowed
    assert result.decision.reason == reason
    assert result.attributes == {}
    audited = session.execute(
        select(AuditEvent.outcome, AuditEvent.reason).where(
            AuditEvent.customer_id == c.id, AuditEvent.action == "data.read"
        )
    ).all()
    assert audited == [("denied", reason)]


def test_an_export_racing_an_erasure_leaves_the_customer_out(
    runtime, session, backend, monkeypatch
):
    if backend != "postgres":
        pytest.skip("SQLite reads in one snapshot")
    staying = create_customer(session, runtime, first_name="Anna")
    going = create_customer(session, runtime, first_name="Bert")
    for c in (staying, going):
        record_consent(session, runtime, c.id, PURPOSE)
    session.rollback()
    first = store.audience_batch

    def then_erase(conn, *args, **kwargs):
        rows = first(conn, *args, **kwargs)
        if rows:
            with Session(runtime.engine) as other:
                _erase(other, going.id)
                other.commit()
        return rows

    monkeypatch.setattr(store, "audience_batch", then_erase)
    lines = b"".join(
        service.audience(
            engine=runtime.engine,
            envelope=runtime.envelope,
            policy=runtime.policy,
            principal=_principal(),
            purpose=runtime.policy.purposes[PURPOSE],
            requested=None,
            now=datetime.now(UTC),
        )
    ).splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert [e["customer_id"] for e in exported] == [str(staying.id)]
    assert exported[0]["attributes"]["first_name"] == "Anna"
