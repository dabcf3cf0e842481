"""Several server processes write and seal at once; the log stays one gapless, valid chain."""

import multiprocessing
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit import verify as audit_verify
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.audit.seal import seal_pending, start_sealer
from vault.config import Settings
from vault.provenance import Caller
from vault.runtime import Runtime

WRITERS = 4
SECONDS = 10


def _writer(url: str, data_dir: str, seconds: float, index: int, results) -> None:
    """One 'server process': its own engine and background sealer, writing small transactions
    of 1 to 5 events, and rolling back every seventh."""
    settings = Settings(
        data_dir=Path(data_dir),
        database_url=url,
        audit_seal_interval=0.05,
        audit_checkpoint_interval=0.5,
        _env_file=None,
    )
    rt = Runtime.build(settings)
    sealer = start_sealer(rt)
    committed = 0
    i = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        i += 1
        k = 1 + i % 5
        events = [
            {
                "actor": f"client:cv_w{index}",
                "action": "data.read",
                "outcome": "allowed",
                "purpose": "newsletter",
                "attributes": ["email"],
                "request_id": f"w{index}-{i}-{j}",
            }
            for j in range(k)
        ]
        with Session(rt.engine) as session:
            if k == 1:
                one = dict(events[0])
                by = Caller(one.pop("actor"), one.pop("request_id"))
                audit_record.record(session=session, by=by, **one)
            else:
                audit_record.record_many(session=session, events=events)
            if i % 7 == 0:
                session.rollback()
                continue
            session.commit()
        committed += k
    sealer.stop()
    rt.engine.dispose()
    results.put(committed)


@pytest.mark.slow
def test_four_processes_writing_for_ten_seconds_leave_a_valid_log(backend, runtime, settings):
    # The acceptance test is PostgreSQL's; SQLite (one writer at a time) gets a shorter run.
    seconds = SECONDS if backend == "postgres" else 3
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer,
            args=(settings.resolved_database_url, str(settings.data_dir), seconds, n, results),
        )
        for n in range(WRITERS)
    ]
    for p in procs:
        p.start()
    # Verify while they write: each verification reads one snapshot and must be intact.
    verifications = []
    time.sleep(1)
    while any(p.is_alive() for p in procs):
        verifications.append(audit_verify.verify_engine(engine=runtime.engine, keys=runtime.keys))
        time.sleep(0.5)
    counts = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    seal_pending(engine=runtime.engine, keys=runtime.keys, checkpoint=True)
    result = audit_verify.verify_engine(engine=runtime.engine, keys=runtime.keys)
    with Session(runtime.engine) as s:
        rows = s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        top = s.execute(select(func.max(AuditEvent.seq))).scalar_one()
        checkpoints = s.execute(select(func.count()).select_from(AuditCheckpoint)).scalar_one()
    total = sum(counts)
    print(
        f"{WRITERS} writers, {backend}: {total} events, {checkpoints} checkpoints, "
        f"{len(verifications)} live verifications"
    )
    assert total > 100 and all(c > 0 for c in counts)
    assert rows == top == total
    assert result.model_dump() == {"ok": True, "checked": total, "first_invalid_seq": None}
    assert verifications and all(v.ok for v in verifications), verifications
    assert checkpoints >= 3
