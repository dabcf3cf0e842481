"""Verification: every kind of tampering is found, and the first bad seq named."""

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from tests.audit.helpers import seal, stored_hash, tamper, verify, write
from vault.audit import chain
from vault.audit import verify as audit_verify
from vault.audit.models import AuditEvent
from vault.db import utcnow


@pytest.fixture
def log(runtime):
    """25 chained events: checkpoints at seq 10 and 20, seq 21-25 not yet covered."""
    write(runtime, 10)
    assert seal(runtime).checkpoint_seq == 10
    write(runtime, 10)
    assert seal(runtime).checkpoint_seq == 20
    write(runtime, 5)
    assert seal(runtime, checkpoint=False).head_seq == 25
    return runtime


def test_empty_log_verifies(runtime):
    result = verify(runtime)
    assert (result.ok, result.checked, result.first_invalid_seq) == (True, 0, None)


def test_intact_log_verifies(log):
    result = verify(log)
    assert (result.ok, result.checked, result.first_invalid_seq) == (True, 25, None)


def test_changed_field_is_found(log):
    with tamper(log) as conn:
        conn.execute(text("UPDATE audit_event SET purpose = 'analytics' WHERE seq = 7"))
    assert (verify(log).ok, verify(log).first_invalid_seq) == (False, 7)


def test_changed_time_is_found(log):
    with tamper(log) as conn:
        row = conn.execute(text("SELECT id FROM audit_event WHERE seq = 23")).scalar_one()
    with tamper(log) as conn:
        conn.execute(
            AuditEvent.__table__.update()
            .where(AuditEvent.__table__.c.id == row)
            .values(occurred_at=utcnow() - timedelta(days=1))
        )
    result = verify(log)
    assert (result.ok, result.first_invalid_seq, result.checked) == (False, 23, 22)


def test_deleted_row_is_found(log):
    with tamper(log) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = 7"))
    assert verify(log).first_invalid_seq == 7


def test_swapped_rows_are_found(log):
    with tamper(log) as conn:
        conn.execute(text("UPDATE audit_event SET seq = -5 WHERE seq = 5"))
        conn.execute(text("UPDATE audit_event SET seq = 5 WHERE seq = 8"))
        conn.execute(text("UPDATE audit_event SET seq = 8 WHERE seq = -5"))
    result = verify(log)
    assert (result.ok, result.first_invalid_seq) == (False, 5)


def test_swapped_contents_with_hashes_are_found(log):
    cols = (
        "occurred_at, actor_type, actor_id, action, outcome, customer_id, purpose, attributes,"
        " reason, request_id, details, hash"
    )
    with tamper(log) as conn:
        a = conn.execute(text(f"SELECT {cols} FROM audit_event WHERE seq = 22")).one()
        b = conn.execute(text(f"SELECT {cols} FROM audit_event WHERE seq = 24")).one()
        names = [c.strip() for c in cols.split(",")]
        sets = ", ".join(f"{c} = :{c}" for c in names)
        conn.execute(
            text(f"UPDATE audit_event SET {sets} WHERE seq = 22"), dict(zip(names, b, strict=True))
        )
        conn.execute(
            text(f"UPDATE audit_event SET {sets} WHERE seq = 24"), dict(zip(names, a, strict=True))
        )
    assert verify(log).first_invalid_seq == 22


def test_forged_row_inserted_is_found(log):
    with tamper(log) as conn:
        # Make room at seq 13 (descending, so the unique seq never collides), then forge.
        for seq in range(25, 12, -1):
            conn.execute(text("UPDATE audit_event SET seq = seq + 1 WHERE seq = :s"), {"s": seq})
        conn.execute(
            text(
                "INSERT INTO audit_event (seq, occurred_at, actor_type, actor_id, action, outcome,"
                " attributes, hash) VALUES (13, :t, 'client', 'cv_test', 'data.read', 'allowed',"
                " '', :h)"
            ),
            {"t": utcnow().strftime("%Y-%m-%d %H:%M:%S.%f"), "h": stored_hash(conn, 14)},
        )
    result = verify(log)
    assert (result.ok, result.first_invalid_seq) == (False, 13)


def test_rewritten_chain_is_caught_by_the_next_checkpoint(log):
    """A DBA who recomputes every later hash keeps the chain consistent; the signed checkpoint
    at 20 no longer matches, so everything after the last good checkpoint (10) is unproven."""
    with tamper(log) as conn:
        conn.execute(text("UPDATE audit_event SET purpose = 'analytics' WHERE seq = 13"))
        dialect = conn.dialect.name
        prev = stored_hash(conn, 12)
        rows = conn.execute(
            text(
                f"SELECT seq, {chain.body_sql(dialect, with_seq=False)} "
                "FROM audit_event WHERE seq > 12 ORDER BY seq"
            )
        ).all()
        for seq, body in rows:
            prev = chain.link(prev, seq, body)
            conn.execute(
                text("UPDATE audit_event SET hash = :h WHERE seq = :s"), {"h": prev, "s": seq}
            )
    result = verify(log)
    assert (result.ok, result.first_invalid_seq, result.checked) == (False, 11, 19)


def test_tail_cut_after_a_checkpoint_is_found(log):
    with tamper(log) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq >= 18"))
    result = verify(log)
    assert (result.ok, result.first_invalid_seq, result.checked) == (False, 18, 17)


def test_checkpoint_with_wrong_signature_is_found(log):
    with tamper(log) as conn:
        sig = bytes(
            conn.execute(text("SELECT signature FROM audit_checkpoint WHERE seq = 20")).scalar_one()
        )
        bad = bytes([sig[0] ^ 1]) + sig[1:]
        conn.execute(text("UPDATE audit_checkpoint SET signature = :s WHERE seq = 20"), {"s": bad})
    result = verify(log)
    assert (result.ok, result.first_invalid_seq) == (False, 20)


def test_checkpoint_signed_by_another_key_is_found(log):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    with tamper(log) as conn:
        row = conn.execute(
            text("SELECT hash, signed_at FROM audit_checkpoint WHERE seq = 10")
        ).one()
        signed_at = audit_verify._signed_at(row.signed_at)
        forged = chain.sign_checkpoint(
            ed25519.Ed25519PrivateKey.generate(), 10, bytes(row.hash), signed_at
        )
        conn.execute(
            text("UPDATE audit_checkpoint SET signature = :s WHERE seq = 10"), {"s": forged}
        )
    assert verify(log).first_invalid_seq == 10


def test_triggers_refuse_checkpoint_changes(log):
    with Session(log.engine) as s:
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("UPDATE audit_checkpoint SET seq = 99 WHERE seq = 20"))
        s.rollback()
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("DELETE FROM audit_checkpoint"))
        s.rollback()
    assert verify(log).ok


def test_head_deleted_without_a_purge_is_found(log):
    """Deleting everything up to a checkpoint looks like a purge, but no chained audit.purged
    event authorises it."""
    with tamper(log) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq <= 10"))
    result = verify(log)
    assert (result.ok, result.first_invalid_seq) == (False, 1)


def test_head_deleted_not_at_a_checkpoint_is_found(log):
    with tamper(log) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq <= 12"))
    assert verify(log).first_invalid_seq == 11
