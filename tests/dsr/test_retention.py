"""The retention job: with the clock moved forward it deletes exactly the expired values, and
a second run deletes nothing more."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.dsr.helpers import customer_with_data, dsr
from tests.factories import auth_headers, record_consent
from vault.audit.models import AuditEvent
from vault.cli import app as cli
from vault.consent.models import ConsentConfirmation, ConsentEvent, ConsentIdempotency
from vault.customers.models import BlindIndex, CustomerValue
from vault.dsr import retention
from vault.policy.facts import effective_retention


def test_effective_retention_rules(runtime):
    rules = effective_retention(runtime.policy)
    assert rules["dietary_restrictions"] == (730, "attribute")  # its own retention_days
    assert rules["phone"] == (730, "purposes")  # only order_fulfilment uses it
    assert rules["street"] == (3650, "purposes")  # the longest: tax_records
    assert rules["email"] == (None, "none")  # a purpose without retention uses it


def _age(session, customer_id, days, *names):
    session.execute(
        update(CustomerValue)
        .where(CustomerValue.customer_id == customer_id, CustomerValue.attribute.in_(names))
        .values(updated_at=datetime.now(UTC) - timedelta(days=days))
    )
    session.commit()


def _values(session):
    rows = set(session.execute(select(CustomerValue.customer_id, CustomerValue.attribute)).all())
    session.rollback()
    return rows


def _count(session, model):
    n = len(session.execute(select(model)).all())
    session.rollback()
    return n


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }


def test_retention_run_deletes_exactly_the_expired_values_twice_the_same(
    client, session, runtime, env
):
    old = customer_with_data(session, runtime, email="old@example.de")
    new = customer_with_data(session, runtime, email="new@example.de", phone="+49 40 7654321")
    restricted = customer_with_data(session, runtime, email="r@example.de", phone="+4989111222")
    held = customer_with_data(session, runtime, email="h@example.de", phone="+4989333444")
    for c in (old, restricted, held):
        _age(session, c.id, 100, "dietary_restrictions", "phone", "street", "email")
    staff = dsr(session, runtime)
    client.post(f"/v1/customers/{restricted.id}/restriction", headers=staff)
    client.post(f"/v1/customers/{held.id}/legal-hold", json={"reason": "litigation"}, headers=staff)
    # consent working copies: a double opt-in token and an idempotency answer
    writer = auth_headers(session, runtime, "consent:write")
    r = client.post(
        f"/v1/customers/{new.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers={**writer, "Idempotency-Key": "retention-1"},
    )
    assert r.status_code == 201
    record_consent(session, runtime, old.id, "personalised_offers", "granted")
    events_before = _count(session, ConsentEvent)
    before = _values(session)

    later = datetime.now(UTC) + timedelta(days=650)  # old values are 750 days old, new 650
    report = retention.run(engine=runtime.engine, policy=runtime.policy, now=later)
    assert report.by_attribute == {"dietary_restrictions": 1, "phone": 1}
    assert report.customers == {old.id}
    assert (report.confirmations_deleted, report.idempotency_deleted) == (1, 1)
    after = _values(session)
    assert before - after == {(old.id, "dietary_restrictions"), (old.id, "phone")}
    index = set(session.execute(select(BlindIndex.customer_id, BlindIndex.attribute)).all())
    session.rollback()
    assert (old.id, "phone") not in index and (new.id, "phone") in index
    assert (old.id, "email") in index
    assert _count(session, ConsentConfirmation) == 0
    assert _count(session, ConsentIdempotency) == 0
    assert _count(session, ConsentEvent) == events_before  # the ledger is untouched

    # the same run again: nothing more to delete, the same data
    result = CliRunner().invoke(
        cli, ["retention", "run", "--now", later.isoformat(), "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["values_deleted"] == 0 and summary["customers_affected"] == 0
    assert _values(session) == after

    audits = session.execute(
        select(AuditEvent.action, AuditEvent.customer_id, AuditEvent.attributes).where(
            AuditEvent.action.startswith("retention.")
        )
    ).all()
    session.rollback()
    deleted = sorted((a[2], a[1]) for a in audits if a[0] == "retention.deleted")
    assert deleted == [("dietary_restrictions", old.id), ("phone", old.id)]
    assert [a[0] for a in audits].count("retention.run") == 2

    # a run at the real now deletes nothing of the fresh values (end the read ``old.id`` began:
    # an open read holds the WAL, and the run's checkpoint would answer ErasureIncomplete)
    session.rollback()
    report = retention.run(engine=runtime.engine, policy=runtime.policy)
    assert report.values_deleted == 0


def test_retention_in_small_batches_and_a_rectified_value_survives(session, runtime):
    customers = [
        customer_with_data(session, runtime, email=f"b{i}@example.de", phone=f"+49301111{i}")
        for i in range(5)
    ]
    for c in customers:
        _age(session, c.id, 800, "dietary_restrictions")
    # rectified since: newer, so kept
    _age(session, customers[0].id, 1, "dietary_restrictions")
    report = retention.run(engine=runtime.engine, policy=runtime.policy, batch_size=2)
    assert report.by_attribute == {"dietary_restrictions": 4}
    left = {cid for cid, a in _values(session) if a == "dietary_restrictions"}
    assert left == {customers[0].id}


def test_cli_rejects_a_naive_now(env):
    result = CliRunner().invoke(cli, ["retention", "run", "--now", "2030-01-01T00:00:00"], env=env)
    assert result.exit_code != 0 and "time zone" in result.output
