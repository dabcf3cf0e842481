"""Sealing and verification: every kind of tampering is found, and the first bad seq named."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from tests.audit.helpers import seal, tamper, verify, write
from vault.audit import chain
from vault.audit import purge as audit_purge
from vault.audit import seal as audit_seal
from vault.audit import verify as audit_verify
from vault.audit.models import AuditCheckpoint, AuditEvent, AuditPurge
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


def _hash(conn, seq):
    return bytes(
        conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}).scalar_one()
    )


def test_empty_log_verifies(runtime):
    result = verify(runtime)
    assert (result.ok, result.checked, result.first_invalid_seq) == (True, 0, None)


def test_intact_log_verifies(log):
    result = verify(log)
    assert (result.ok, result.checked, result.first_invalid_seq) == (True, 25, None)


def test_seal_assigns_gapless_seq_in_commit_order(runtime):
    write(runtime, 3)
    seal(runtime)
    write(runtime, 2)
    result = seal(runtime, checkpoint=False)
    assert (result.sealed, result.head_seq, result.checkpoint_seq) == (2, 5, None)
    with Session(runtime.engine) as s:
        seqs = s.execute(select(AuditEvent.seq).order_by(AuditEvent.id)).scalars().all()
        cps = s.execute(select(AuditCheckpoint.seq)).scalars().all()
    assert seqs == [1, 2, 3, 4, 5] and cps == [3]


def test_seal_writes_a_checkpoint_when_the_interval_has_passed(runtime):
    write(runtime, 2)
    with Session(runtime.engine) as s:
        assert audit_seal.seal(session=s, keys=runtime.keys).checkpoint_seq == 2  # first ever
        s.commit()
    write(runtime, 2)
    with Session(runtime.engine) as s:
        r = audit_seal.seal(session=s, keys=runtime.keys, checkpoint_interval=3600)
        assert r.checkpoint_seq is None
        r = audit_seal.seal(
            session=s,
            keys=runtime.keys,
            now=utcnow() + timedelta(hours=2),
            checkpoint_interval=3600,
        )
        assert r.checkpoint_seq == 4
        s.commit()
    assert verify(runtime).ok


def test_hash_is_the_documented_chain(runtime):
    write(runtime, 2)
    seal(runtime)
    with runtime.engine.connect() as conn:
        bodies = (
            conn.execute(
                text(
                    f"SELECT {chain.body_sql(conn.dialect.name, with_seq=True)} "
                    "FROM audit_event ORDER BY seq"
                )
            )
            .scalars()
            .all()
        )
        h1 = hashlib.sha256(chain.GENESIS + bodies[0].encode()).digest()
        h2 = hashlib.sha256(h1 + bodies[1].encode()).digest()
        assert (_hash(conn, 1), _hash(conn, 2)) == (h1, h2)
    assert bodies[0].split(chain.SEP)[:6] == [
        "1",
        bodies[0].split(chain.SEP)[1],
        "client",
        "cv_test",
        "data.read",
        "allowed",
    ]


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
            {"t": utcnow().strftime("%Y-%m-%d %H:%M:%S.%f"), "h": _hash(conn, 14)},
        )
    result = verify(log)
    assert (result.ok, result.first_invalid_seq) == (False, 13)


def test_rewritten_chain_is_caught_by_the_next_checkpoint(log):
    """A DBA who recomputes every later hash keeps the chain consistent; the signed checkpoint
    at 20 no longer matches, so everything after the last good checkpoint (10) is unproven."""
    with tamper(log) as conn:
        conn.execute(text("UPDATE audit_event SET purpose = 'analytics' WHERE seq = 13"))
        dialect = conn.dialect.name
        prev = _hash(conn, 12)
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


# --- retention -------------------------------------------------------------------------------


def test_purge_keeps_the_rest_verifiable_from_a_signed_anchor(runtime):
    old = utcnow() - timedelta(days=400)
    write(runtime, 10, now=old)
    seal(runtime)  # checkpoint 10
    write(runtime, 3, now=old)
    seal(runtime, checkpoint=False)  # 11-13 old but after the last checkpoint: kept
    write(runtime, 5)
    seal(runtime)  # checkpoint 18
    with Session(runtime.engine) as s:
        result = audit_purge.purge(session=s, retention_days=365)
        s.commit()
    assert (result.up_to_seq, result.deleted) == (10, 10)
    seal(runtime)
    with Session(runtime.engine) as s:
        left = s.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
        cps = s.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).scalars().all()
        purges = s.execute(select(AuditPurge.up_to_seq)).scalars().all()
        purged = (
            s.execute(select(AuditEvent).where(AuditEvent.action == "audit.purged")).scalars().one()
        )
    assert left == list(range(11, 20)) and cps == [10, 18, 19] and purges == [10]
    assert purged.seq == 19 and '"up_to_seq":10' in purged.details
    assert verify(runtime).model_dump() == {"ok": True, "checked": 9, "first_invalid_seq": None}
    # A second purge with nothing old left does nothing.
    with Session(runtime.engine) as s:
        assert audit_purge.purge(session=s, retention_days=365).up_to_seq is None


def test_purge_permit_allows_nothing_above_the_anchor(runtime):
    old = utcnow() - timedelta(days=400)
    write(runtime, 4, now=old)
    seal(runtime)
    write(runtime, 2)
    seal(runtime)
    with Session(runtime.engine) as s:
        audit_purge.purge(session=s, retention_days=30)
        s.commit()
    with Session(runtime.engine) as s:
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("DELETE FROM audit_event WHERE seq = 5"))
        s.rollback()
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("DELETE FROM audit_purge"))
        s.rollback()


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
