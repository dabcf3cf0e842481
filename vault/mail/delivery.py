"""Delivering the mail outbox: claim, send, record; the deliverer of ``vault worker`` and of
``vault serve`` on the embedded default.

The states of a ``mail_outbox`` row::

    pending --sent--> sent
       |  \\--failed--> retrying --(backoff elapsed) sent--> sent
       |                  \\--attempt N failed--> failed
       \\--5xx for the recipient or the message--> bounced

- **Claim** leases up to *n* due mails to one deliverer (``claimed_until``, ``claimed_by``)
  with one ``UPDATE … WHERE id IN (…) RETURNING``: on PostgreSQL the inner ``SELECT`` takes
  ``FOR UPDATE SKIP LOCKED``, so two deliverers never take the same row; on SQLite the write
  transaction (``BEGIN IMMEDIATE``) makes the update atomic. The claim commits before anything
  is sent, so the lease is visible to every other deliverer.
- **Send** happens outside any transaction (SMTP), one connection per batch. Before each mail
  the deliverer checks that its lease still outlasts one send (``2 * VAULT_SMTP_TIMEOUT``;
  the settings refuse a shorter lease); if not it hands the rest of the batch back. The mail
  drop is the exception: the file is written inside the transaction that marks the row sent,
  so an erasure cannot slip between (:mod:`vault.mail.drop`).
- **Record**: sent, bounced (permanent refusal), retrying with exponential backoff and jitter,
  or failed after ``VAULT_MAIL_MAX_ATTEMPTS``. A deliverer that lost its lease records nothing.
- A deliverer killed mid-send leaves its rows leased; after ``VAULT_MAIL_LEASE_SECONDS``
  another sends them again: at least once. The ``Message-ID`` is the same on every attempt.

Logs name the mail id, the template, the attempt and the error code; never an address, a
subject, a body or a link (they carry tokens).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlmodel import Session

from vault.config import Settings
from vault.db import reader, transaction, utcnow
from vault.errors import VaultError
from vault.mail import drop, outbox
from vault.mail.errors import SendFailed
from vault.mail.models import OPEN, MailMessage, MailReceipt, MailStatus
from vault.mail.smtp import SmtpTransport, failure
from vault.mail.wire import message_sha256

if TYPE_CHECKING:
    from email.message import EmailMessage

    from vault.runtime import Runtime

log = logging.getLogger("vault.mail")

_M = MailMessage.__table__
PURGE_EVERY = 600.0  # seconds between retention passes of one deliverer
PURGE_BATCH = 1000
# the error of a mail whose ciphertext does not open (moved or altered row)
UNREADABLE = "unreadable"


class Transport(Protocol):
    in_transaction: bool

    def send(
        self, message: EmailMessage, *, mail_id: UUID, sender: str, recipient: str
    ) -> None: ...

    def close(self) -> None: ...


def transport_for(settings: Settings) -> Transport:
    """SMTP when ``VAULT_SMTP_URL`` is set, else the mail drop (development; production
    refuses to start without the URL)."""
    smtp = settings.smtp
    if smtp is None:
        return drop.MailDrop(drop.drop_dir(settings))
    return SmtpTransport(smtp, timeout=settings.smtp_timeout, ca_file=settings.smtp_ca_file)


def backoff(attempts: int, settings: Settings, rng: random.Random | None = None) -> timedelta:
    """base * 2^(attempts-1), capped, then a random 50-100 % of it."""
    rng = rng or random
    delay = min(settings.mail_backoff_max, settings.mail_backoff_base * 2 ** (attempts - 1))
    return timedelta(seconds=delay * (0.5 + rng.random() / 2))


# --- claim ------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Job:
    """One claimed mail; ``message`` is None when it cannot be opened (its key is gone)."""

    id: UUID
    customer_id: UUID
    template: str
    attempts: int
    claimed_until: datetime
    message: outbox.Message | None
    template_version: str = ""
    language: str = ""

    def __repr__(self) -> str:
        return f"Job(mail={self.id}, template={self.template}, attempts={self.attempts})"


def _due(now: datetime) -> Any:
    return and_(
        _M.c.status.in_(OPEN),
        _M.c.next_attempt_at <= now,
        or_(_M.c.claimed_until.is_(None), _M.c.claimed_until < now),
    )


def any_due(session: Session, now: datetime) -> bool:
    """A cheap read before a claim, so an idle deliverer does not take SQLite's write lock."""
    return bool(session.execute(select(exists().where(_due(now)))).scalar())


def claim(
    *,
    session: Session,
    envelope: Any,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Job]:
    """Lease up to ``limit`` due mails to ``worker_id`` and open them; the caller commits at
    once, before anything is sent."""
    candidates = select(_M.c.id).where(_due(now)).order_by(_M.c.next_attempt_at).limit(limit)
    until = now + lease
    claim_them = update(_M).values(claimed_until=until, claimed_by=worker_id)
    if session.get_bind().dialect.name == "postgresql":
        # A materialized CTE, not "IN (subquery)": PostgreSQL may rescan such a subquery while
        # the UPDATE runs, and SKIP LOCKED then passes over the rows this very statement has
        # just updated and hands out more (measured: 6 rows claimed for a limit of 4).
        due = (
            candidates.with_for_update(skip_locked=True).cte("due_mail").prefix_with("MATERIALIZED")
        )
        claim_them = claim_them.where(_M.c.id == due.c.id)
    else:  # one writer at a time (BEGIN IMMEDIATE): the subquery is evaluated once
        claim_them = claim_them.where(_M.c.id.in_(candidates.scalar_subquery()), _due(now))
    ids = list(session.execute(claim_them.returning(_M.c.id)).scalars())
    if not ids:
        return []
    rows = session.execute(select(_M).where(_M.c.id.in_(ids)).order_by(_M.c.next_attempt_at))
    jobs = []
    for row in rows:
        try:
            message: outbox.Message | None = outbox.open_message(session, envelope, row)
        except VaultError:  # the customer's key is gone (erased meanwhile) or the row was moved
            message = None
        jobs.append(
            Job(
                row.id,
                row.customer_id,
                row.template,
                row.attempts,
                until,
                message,
                row.template_version,
                row.language,
            )
        )
    return jobs


@dataclass(frozen=True)
class Sent:
    """What a transport accepted: the ``Message-ID``, the SHA-256 of the exact bytes handed
    over and when the server (or the mail drop) took them."""

    message_id: str
    sha256: str
    accepted_at: datetime
    transport: str


def record_receipt(session: Session, job: Job, sent: Sent) -> None:
    """The mail's :class:`~vault.mail.models.MailReceipt` (kept after purge and erasure)."""
    session.execute(
        insert(MailReceipt.__table__).values(
            mail_id=job.id,
            customer_id=job.customer_id,
            template=job.template,
            template_version=job.template_version,
            language=job.language,
            message_id=sent.message_id,
            sha256=sent.sha256,
            transport=sent.transport,
            accepted_at=sent.accepted_at,
        )
    )


def release(*, session: Session, ids: list[UUID], worker_id: str) -> None:
    """Hand claimed mails back unsent (the lease would not outlast another send)."""
    session.execute(
        update(_M)
        .where(_M.c.id.in_(ids), _M.c.claimed_by == worker_id)
        .values(claimed_until=None, claimed_by=None)
    )


# --- outcome ----------------------------------------------------------------------------------


def complete(
    *,
    session: Session,
    job: Job,
    worker_id: str,
    error: SendFailed | None,
    settings: Settings,
    now: datetime,
) -> str | None:
    """Record one attempt (``error`` None: sent); returns the new state, or None when this
    deliverer no longer holds the mail (lease lost, or the mail was erased meanwhile)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_error": None if error is None else error.code,
        "claimed_until": None,
        "claimed_by": None,
    }
    if error is None:
        state = MailStatus.SENT
        values.update(finished_at=now)
    elif error.code == UNREADABLE:  # nothing to send, ever: given up, not a bounce
        state = MailStatus.FAILED
        values.update(finished_at=now)
    elif error.permanent:
        state = MailStatus.BOUNCED
        values.update(finished_at=now)
    elif attempts >= settings.mail_max_attempts:
        state = MailStatus.FAILED
        values.update(finished_at=now)
    else:
        state = MailStatus.RETRYING
        values.update(next_attempt_at=now + backoff(attempts, settings))
    result = session.execute(
        update(_M)
        .where(_M.c.id == job.id, _M.c.claimed_by == worker_id)
        .values(status=state.value, **values)
    )
    return state.value if result.rowcount else None


# --- the deliverer ----------------------------------------------------------------------------


class Deliverer:
    """Sends the mail outbox until :meth:`stop`; safe to run in many processes at once."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        batch_size: int = 10,
        worker_id: str | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.runtime = runtime
        self.settings = runtime.settings
        self.batch_size = max(1, batch_size)
        self.worker_id = worker_id or (
            f"mail-{socket.gethostname()[:30]}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        self.transport = transport or transport_for(self.settings)
        self.clock = clock
        self.stats = {s.value: 0 for s in MailStatus}
        self._stop = threading.Event()
        self._next_purge = 0.0
        self._thread: threading.Thread | None = None

    def _transaction(self, fn: Callable[[Session], Any]) -> Any:
        with transaction(self.runtime.engine) as session:
            return fn(session)

    # --- lifecycle ---

    def start(self) -> Deliverer:
        """Run :meth:`run` in a daemon thread (``vault serve``, ``vault worker``)."""
        self._thread = threading.Thread(target=self.run, name="mail-deliverer", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Stop after the current mail; ``wait``: until the thread has ended (not from a
        signal handler)."""
        self._stop.set()
        outbox.WAKE.set()
        thread = self._thread
        if wait and thread is not None:
            thread.join(self.settings.smtp_timeout * 2)
            self._thread = None

    def run(self, *, max_rounds: int | None = None) -> None:
        rounds = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # a database hiccup must not end the deliverer
                log.error("mail round failed: %s", type(exc).__name__)
                busy = 0
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                return
            if not busy and not self._stop.is_set():
                outbox.WAKE.wait(self.settings.mail_poll_interval)
                outbox.WAKE.clear()

    # --- one round ---

    def run_once(self) -> int:
        """Purge (when due), then claim and send one batch; returns the mails handled."""
        done = 0
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY
            done += self.purge()
        now = self.clock()
        with Session(reader(self.runtime.engine)) as peek:
            due = any_due(peek, now)
            peek.rollback()
        if not due:
            return done
        jobs = self._transaction(
            lambda s: claim(
                session=s,
                envelope=self.runtime.envelope,
                worker_id=self.worker_id,
                now=now,
                lease=timedelta(seconds=self.settings.mail_lease_seconds),
                limit=self.batch_size,
            )
        )
        try:
            for i, job in enumerate(jobs):
                margin = timedelta(seconds=2 * self.settings.smtp_timeout)
                if self._stop.is_set() or self.clock() + margin >= job.claimed_until:
                    rest = [j.id for j in jobs[i:]]
                    self._transaction(
                        lambda s, rest=rest: release(session=s, ids=rest, worker_id=self.worker_id)
                    )
                    break
                self.deliver(job)
                done += 1
        finally:
            self.transport.close()
        return done

    def purge(self) -> int:
        """Delete finished mails past ``VAULT_MAIL_RETENTION_DAYS`` (and their drop files)."""
        retention = timedelta(days=self.settings.mail_retention_days)
        total = 0
        with Session(reader(self.runtime.engine)) as peek:
            expired = outbox.any_expired(peek, now=self.clock(), retention=retention)
            peek.rollback()
        while expired:
            n = self._transaction(
                lambda s: outbox.purge(
                    s,
                    now=self.clock(),
                    retention=retention,
                    drop_dir=drop.drop_dir(self.settings),
                    limit=PURGE_BATCH,
                )
            )
            total += n
            expired = n == PURGE_BATCH
        if isinstance(self.transport, drop.MailDrop):
            cutoff = (self.clock() - retention).timestamp()
            total += drop.remove_older_than(self.transport.directory, cutoff)
        return total

    def deliver(self, job: Job) -> str | None:
        """Send one claimed mail and record the outcome; returns the new state."""
        if job.message is None:
            state = self._record(job, SendFailed(UNREADABLE, permanent=True))
        elif self.transport.in_transaction:
            state = self._deliver_locally(job, job.message)
        else:
            sent = None
            try:
                sent = self._send(job.message)
                error = None
            except SendFailed as exc:
                error = exc
            state = self._record(job, error, sent)
        if state is not None:
            self.stats[state] = self.stats.get(state, 0) + 1
        return state

    def _send(self, message: outbox.Message) -> Sent:
        composed = outbox.compose(message, self.settings)
        try:
            self.transport.send(
                composed,
                mail_id=message.id,
                sender=outbox.sender_address(self.settings),
                recipient=message.to,
            )
        except SendFailed:
            raise
        except Exception as exc:  # a transport's own error (the drop: disk full ...)
            raise failure(exc) from None
        return Sent(
            message_id=str(composed["Message-ID"]),
            sha256=message_sha256(composed),
            accepted_at=self.clock(),
            transport="drop" if self.transport.in_transaction else "smtp",
        )

    def _deliver_locally(self, job: Job, message: outbox.Message) -> str | None:
        # Mark the row sent first: the UPDATE holds the row (PostgreSQL) or the write lock
        # (SQLite) while the file is written, so an erasure waits and then removes the file.
        def run(session: Session) -> str | None:
            state = complete(
                session=session,
                job=job,
                worker_id=self.worker_id,
                error=None,
                settings=self.settings,
                now=self.clock(),
            )
            if state is not None:
                record_receipt(session, job, self._send(message))
            return state

        try:
            return self._transaction(run)
        except SendFailed as exc:
            return self._record(job, exc)

    def _record(self, job: Job, error: SendFailed | None, sent: Sent | None = None) -> str | None:
        def run(session: Session) -> str | None:
            state = complete(
                session=session,
                job=job,
                worker_id=self.worker_id,
                error=error,
                settings=self.settings,
                now=self.clock(),
            )
            if state == MailStatus.SENT and sent is not None:
                record_receipt(session, job, sent)
            return state

        state = self._transaction(run)
        if error is not None:
            log.warning(
                "mail %s (%s) attempt %d failed (%s): %s",
                job.id,
                job.template,
                job.attempts + 1,
                error.code,
                state or "no longer ours",
            )
        return state


@contextmanager
def running_deliverer(runtime: Runtime) -> Iterator[Deliverer | None]:
    """``with running_deliverer(runtime): ...`` — for the app lifespan: a deliverer thread
    when this server delivers mail (``VAULT_MAIL_IN_SERVER``; by default on the embedded
    default only)."""
    if not runtime.settings.mail_delivered_by_server:
        yield None
        return
    deliverer = Deliverer(runtime).start()
    try:
        yield deliverer
    finally:
        deliverer.stop()
