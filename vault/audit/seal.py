"""Chaining the audit log: :func:`seal`, and the sealer that runs it in transactions of its own.

**Chaining is done by one sealer at a time, after commit.** :func:`seal` takes a short exclusive
lock (``pg_advisory_xact_lock`` on PostgreSQL; on SQLite every write transaction already is
``BEGIN IMMEDIATE``), reads the chain head, reads *committed* unchained rows in id order, and gives
each the next gapless ``seq`` and ``hash = SHA-256(previous hash || canonical body)`` (see
:mod:`vault.audit.chain`). A transaction that commits late (a smaller id committed after a larger
one was chained) is simply chained in a later batch: the chain order is ``seq``, the commit order
as the sealer saw it, never the id order. So many server processes can write at once and no
request ever waits on the chain lock; only sealers do, for as long as hashing one batch takes.
Every ``checkpoint_interval`` (and on demand) the sealer signs the head ``(seq, hash, signed_at)``
with the Ed25519 audit key (public key in ``/.well-known/jwks.json``) into ``audit_checkpoint``.

The sealer runs in a background thread of every server process (:func:`start_sealer`, every
``VAULT_AUDIT_SEAL_INTERVAL`` seconds, 0.5 s by default), on demand before every verification,
and as ``vault audit seal``. Unlike services, :func:`seal_pending` and the :class:`Sealer` own
their transactions: sealing must commit on its own, never inside a request's transaction (it
would hold the chain lock until the response).

**What protects an event when.**

* Before it is chained (normally under a second): the database triggers only. They refuse UPDATE
  (except the sealer's one-time setting of ``seq`` and ``hash``) and DELETE. A DBA who disables
  the triggers in that window can change or drop the row unnoticed. Keep the window short.
* Chained, before the next checkpoint: the hash chain. Any naive change, deletion, reordering or
  insertion makes the recomputed hash differ from the stored one at that ``seq``. A DBA who also
  rewrites every later hash can only do so up to the head: the next checkpoint exposes it.
* Covered by a checkpoint: the Ed25519 signature. Forging requires the audit key, which lives
  with the key provider, not in the database. Cutting off the tail after a checkpoint is detected
  because the checkpoint names a ``seq`` that no longer exists. Cutting off events after the last
  checkpoint cannot be detected by any chain; hence frequent checkpoints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, insert, select, text
from sqlmodel import Session

from vault.audit import chain
from vault.audit.models import AuditCheckpoint
from vault.crypto import KeyMaterial
from vault.db import reader, transaction, utcnow

if TYPE_CHECKING:
    from vault.runtime import Runtime


# pg_advisory_xact_lock key of the chain head ("audit" in ASCII).
SEAL_LOCK_KEY = 0x6175646974
SEAL_BATCH = 5000


@dataclass(frozen=True)
class SealResult:
    sealed: int
    head_seq: int
    checkpoint_seq: int | None  # the checkpoint written by this call, if any


def _head(session: Session) -> tuple[int, bytes]:
    row = session.execute(
        text("SELECT seq, hash FROM audit_event WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
    ).first()
    cp = session.execute(
        text("SELECT seq, hash FROM audit_checkpoint ORDER BY seq DESC LIMIT 1")
    ).first()
    best = max((r for r in (row, cp) if r is not None), key=lambda r: r[0], default=None)
    if best is None:
        return 0, chain.GENESIS
    return int(best[0]), bytes(best[1])


def seal(
    *,
    session: Session,
    keys: KeyMaterial,
    now: datetime | None = None,
    batch_size: int = SEAL_BATCH,
    checkpoint: bool | None = None,
    checkpoint_interval: float = 10.0,
) -> SealResult:
    """Chain up to ``batch_size`` committed unchained events and maybe sign a checkpoint.

    Takes the chain lock for the rest of the caller's transaction; the caller commits at once.
    ``checkpoint``: True signs the head now, False never, None when the last checkpoint is older
    than ``checkpoint_interval`` seconds."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK_KEY})
    head_seq, head_hash = _head(session)
    rows = session.execute(
        text(
            # body_sql is a constant expression over column names, no input.
            f"SELECT id, {chain.body_sql(dialect, with_seq=False)} FROM audit_event "  # noqa: S608
            "WHERE seq IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": batch_size},
    ).all()
    updates = []
    link = chain.link
    for id_, body in rows:
        head_seq += 1
        head_hash = link(head_hash, head_seq, body)
        updates.append({"i": id_, "s": head_seq, "h": head_hash})
    if updates and dialect == "postgresql":
        # One statement for the whole batch instead of one round trip per row.
        session.execute(
            text(
                "UPDATE audit_event AS e SET seq = v.s, hash = v.h FROM "
                "(SELECT unnest(CAST(:i AS bigint[])) AS i, unnest(CAST(:s AS bigint[])) AS s, "
                "unnest(CAST(:h AS bytea[])) AS h) AS v WHERE e.id = v.i"
            ),
            {
                "i": [u["i"] for u in updates],
                "s": [u["s"] for u in updates],
                "h": [u["h"] for u in updates],
            },
        )
    elif updates:
        session.execute(text("UPDATE audit_event SET seq = :s, hash = :h WHERE id = :i"), updates)

    written = None
    if checkpoint is not False and head_seq > 0:
        last = session.execute(
            select(AuditCheckpoint.seq, AuditCheckpoint.signed_at)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        ).first()
        due = (
            checkpoint is True
            or last is None
            or (now - last.signed_at).total_seconds() >= checkpoint_interval
        )
        if due and (last is None or last.seq < head_seq):
            session.execute(
                insert(AuditCheckpoint.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "seq": head_seq,
                        "hash": head_hash,
                        "signed_at": now,
                        "kid": keys.audit_kid,
                        "signature": chain.sign_checkpoint(
                            keys.audit_key, head_seq, head_hash, now
                        ),
                    }
                ],
            )
            written = head_seq
    return SealResult(sealed=len(updates), head_seq=head_seq, checkpoint_seq=written)


def needs_sealing(connection: Connection) -> bool:
    """Cheap check: unchained events, or a chained head no checkpoint covers yet."""
    row = connection.execute(
        text(
            "SELECT (SELECT id FROM audit_event WHERE seq IS NULL LIMIT 1),"
            " (SELECT max(seq) FROM audit_event),"
            " (SELECT max(seq) FROM audit_checkpoint)"
        )
    ).one()
    return row[0] is not None or (row[1] or 0) > (row[2] or 0)


# --- the sealer: own transactions, a background thread ----------------------------------------

log = logging.getLogger("vault.audit")


def seal_pending(
    *,
    engine: Engine,
    keys: KeyMaterial,
    checkpoint: bool | None = None,
    checkpoint_interval: float = 10.0,
    batch_size: int = SEAL_BATCH,
) -> SealResult:
    """Chain every committed unchained event, one committed batch at a time."""
    sealed = 0
    last_cp = None
    while True:
        with transaction(engine) as session:
            result = seal(
                session=session,
                keys=keys,
                batch_size=batch_size,
                checkpoint=checkpoint,
                checkpoint_interval=checkpoint_interval,
            )
        sealed += result.sealed
        last_cp = result.checkpoint_seq or last_cp
        if result.sealed < batch_size:
            return SealResult(sealed=sealed, head_seq=result.head_seq, checkpoint_seq=last_cp)


class Sealer:
    """A daemon thread that seals every ``interval`` seconds while there is work."""

    def __init__(
        self, *, engine: Engine, keys: KeyMaterial, interval: float, checkpoint_interval: float
    ):
        self.engine = engine
        self.keys = keys
        self.interval = interval
        self.checkpoint_interval = checkpoint_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def tick(self) -> None:
        with reader(self.engine).connect() as conn:
            if not needs_sealing(conn):
                return
        seal_pending(
            engine=self.engine, keys=self.keys, checkpoint_interval=self.checkpoint_interval
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # keep sealing after a transient database error
                log.warning("audit sealing failed: %s", type(exc).__name__)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:  # leave a checkpoint over what this process wrote
            seal_pending(engine=self.engine, keys=self.keys, checkpoint=True)
        except Exception as exc:
            log.warning("final audit sealing failed: %s", type(exc).__name__)


def start_sealer(runtime: Runtime) -> Sealer | None:
    """Start the background sealer of this process (None when ``VAULT_AUDIT_SEAL_INTERVAL=0``).

    Call from the app lifespan and ``stop()`` it on shutdown."""
    interval = runtime.settings.audit_seal_interval
    if interval <= 0:
        return None
    return Sealer(
        engine=runtime.engine,
        keys=runtime.keys,
        interval=interval,
        checkpoint_interval=runtime.settings.audit_checkpoint_interval,
    ).start()


@contextmanager
def running_sealer(runtime: Runtime) -> Iterator[Sealer | None]:
    """``with running_sealer(runtime): ...`` — for the app lifespan."""
    sealer = start_sealer(runtime)
    try:
        yield sealer
    finally:
        if sealer is not None:
            sealer.stop()
