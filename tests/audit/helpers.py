"""Helpers for audit tests: write and seal events, and tamper like a DBA would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, text
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit import seal as audit_seal
from vault.audit import verify as audit_verify
from vault.provenance import Caller
from vault.runtime import Runtime

SQLITE_TRIGGERS = [
    "audit_event_no_update",
    "audit_event_no_delete",
    "audit_checkpoint_no_update",
    "audit_checkpoint_no_delete",
]


def write(runtime: Runtime, n: int, *, now: datetime | None = None, **overrides) -> None:
    with Session(runtime.engine) as s:
        for i in range(n):
            audit_record.record(
                session=s,
                by=Caller(overrides.get("actor", "client:cv_test"), f"req{i}"),
                action=overrides.get("action", "data.read"),
                outcome="allowed",
                purpose="newsletter",
                attributes=["email", "first_name"],
                details={"i": i},
                now=now,
            )
        s.commit()


def seal(runtime: Runtime, *, checkpoint: bool | None = True) -> audit_seal.SealResult:
    return audit_seal.seal_pending(engine=runtime.engine, keys=runtime.keys, checkpoint=checkpoint)


def verify(runtime: Runtime):
    return audit_verify.verify_engine(engine=runtime.engine, keys=runtime.keys)


def stored_hash(conn: Connection, seq: int) -> bytes:
    """The hash stored for ``seq``."""
    return bytes(
        conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}).scalar_one()
    )


@contextmanager
def tamper(runtime: Runtime) -> Iterator[Connection]:
    """A connection on which the append-only triggers do not fire, as for a DBA who disables
    them: session_replication_role on PostgreSQL, dropped triggers on SQLite."""
    with runtime.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = replica"))
        else:
            for name in SQLITE_TRIGGERS:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        yield conn
        conn.commit()
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET session_replication_role = origin"))
            conn.commit()
