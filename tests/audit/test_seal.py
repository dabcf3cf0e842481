"""Sealing: gapless seq in commit order, checkpoints by interval, and the background sealer."""

import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from tests.audit.helpers import seal, verify, write
from vault.audit import seal as audit_seal
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.db import utcnow


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


def test_background_sealer_chains_and_checkpoints(runtime):
    s = audit_seal.Sealer(
        engine=runtime.engine, keys=runtime.keys, interval=0.05, checkpoint_interval=0.1
    ).start()
    try:
        write(runtime, 20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Session(runtime.engine) as db:
                pending = db.execute(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
                ).scalar_one()
                top = db.execute(select(func.max(AuditCheckpoint.seq))).scalar()
            if pending == 0 and top == 20:
                break
            time.sleep(0.05)
    finally:
        s.stop()
    assert (pending, top) == (0, 20)
    assert verify(runtime).checked == 20


def test_start_sealer_honours_the_setting(runtime, settings):
    from vault.runtime import Runtime

    off = Runtime.build(
        settings.model_copy(update={"audit_seal_interval": 0}), engine=runtime.engine
    )
    assert audit_seal.start_sealer(off) is None
    on = Runtime.build(
        settings.model_copy(update={"audit_seal_interval": 0.5}), engine=runtime.engine
    )
    s = audit_seal.start_sealer(on)
    assert s is not None and s.interval == 0.5
    s.stop()


def test_running_sealer_stops_and_leaves_a_checkpoint(runtime, settings):
    from vault.runtime import Runtime

    on = Runtime.build(
        settings.model_copy(update={"audit_seal_interval": 0.5}), engine=runtime.engine
    )
    with audit_seal.running_sealer(on) as s:
        assert s is not None and s._thread.is_alive()
        write(runtime, 3)
    assert not s._thread.is_alive()
    with Session(runtime.engine) as db:
        assert db.execute(select(func.max(AuditCheckpoint.seq))).scalar_one() == 3
