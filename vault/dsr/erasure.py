"""Erasure (GDPR Art. 17) by crypto-shredding.

:func:`erase` / :func:`erase_many`: the wrapped data key is set to NULL and values, blind-index
rows, confirmation tokens, idempotency answers and mails (sent or not; their mail drop files
once the erasure has committed) are deleted, and the notes beside the reason codes of the
customer's legal hold, restriction and requests nulled, in the caller's one transaction;
the customer row stays as a tombstone (``erased_at``, ``erased_by``); the consent ledger, its
projection and the audit log stay (ids only, no clear PII). A legal hold (Art. 17(3)) refuses
with 409 (:func:`record_refused_erasure` audits the refusal). Each erasure is audited as
``dsr.erasure``, emits ``customer.erased`` and closes (or records) the erasure request.

Once the erasure has committed, :func:`finish_on_disk` removes the deleted bytes from the
database's files (:func:`vault.db.scrub_deleted`: SQLite truncates its WAL; PostgreSQL vacuums
the tables after a batch) before the erasure answers; if a reader keeps SQLite from finishing,
the erasure answers :class:`~vault.dsr.errors.ErasureIncomplete` (503) instead of success.

Every erasure also issues a signed **erasure certificate** (:class:`Notary`: a JWS of ``typ``
``erasure-certificate+jwt`` under the vault's published key; ids, counts and attribute names,
never values), stored in ``erasure_certificate``, and appends one line per customer to the
**erasure journal** (``erasure-journal.ndjson`` in the data directory, fsync'd *before* the
commit): ``vault restore`` replays it (:func:`reapply`) so a restored backup never brings an
erased customer back. Before, not after: a crash between commit and append would lose the line
and a restore would resurrect the customer; a line whose transaction then rolls back only makes a
restore erase a customer who asked for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Engine, insert, or_, select, update
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.consent import store as consent_store
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.customers import store as customers_store
from vault.customers.schemas import Customer, CustomerStatus
from vault.db import after_commit, scrub_deleted, utcnow
from vault.dsr.errors import ErasureIncomplete, LegalHold
from vault.dsr.models import DataSubjectRequest, ErasureCertificate, RequestKind, RequestStatus
from vault.dsr.requests import due_at, record_audit
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.mail import outbox as mail_outbox
from vault.preferences import store as preferences_store
from vault.provenance import Caller
from vault.runtime import Runtime
from vault.selfservice import sessions as selfservice_sessions

_CHUNK = 500  # ids per IN (...) list
_REQUEST = DataSubjectRequest.__table__
# The tables an erasure deletes rows from (or nulls the wrapped key in): PostgreSQL vacuums them
# after a batch (erase_many), so the erased rows' dead tuples do not wait for autovacuum.
ERASED_TABLES = (
    "customer",
    "customer_value",
    "blind_index",
    "consent_confirmation",
    "consent_idempotency",
    "dsr_request",
    "mail_outbox",
)

_CERTIFICATE = ErasureCertificate.__table__
CERTIFICATE_TYP = "erasure-certificate+jwt"
JOURNAL_NAME = "erasure-journal.ndjson"


@dataclass(frozen=True, repr=False)
class Notary:
    """What an erasure needs besides the session: the signer of its certificate, the vault's
    issuer, the erasure journal to append to (None: none kept, e.g. a replay) and the mail
    drop whose files of the erased customers go (None: none)."""

    signer: Signer
    issuer: str
    journal: Path | None
    mail_drop: Path | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> Notary:
        settings = runtime.settings
        return cls(
            runtime.signer,
            settings.issuer,
            settings.data_dir / JOURNAL_NAME,
            mail_outbox.drop_dir(settings),
        )

    def __repr__(self) -> str:
        return f"Notary(issuer={self.issuer}, journal={self.journal})"


@dataclass(frozen=True)
class Certificate:
    id: UUID
    customer_id: UUID
    issued_at: datetime
    jws: str


@dataclass
class Erased:
    """The tombstone of an erased customer and its signed certificate."""

    customer: Customer
    certificate: Certificate


@dataclass
class EraseManyResult:
    erased: list[UUID] = field(default_factory=list)
    not_found: list[UUID] = field(default_factory=list)
    already_erased: list[UUID] = field(default_factory=list)
    legal_hold: list[UUID] = field(default_factory=list)
    certificates: dict[UUID, Certificate] = field(default_factory=dict)


def _chunks(ids: Sequence[UUID], size: int = _CHUNK) -> Iterable[list[UUID]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def _shred(
    session: Session, ids: list[UUID], actor: str, now: datetime, mail_drop: Path | None = None
) -> dict[UUID, UUID]:
    """One transaction (the caller's): destroy the keys, delete the data, leave tombstones.
    Each domain deletes what it holds of the customers (its ``store.shred``). Returns the
    erasure request of each customer (for its certificate)."""
    customers_store.shred(session, ids, actor, now)
    consent_store.shred(session, ids)
    preferences_store.shred(session, ids)
    selfservice_sessions.shred(session, ids)
    mail_outbox.shred(session, ids, drop_dir=mail_drop)
    conn = session.connection()
    # The requests stay (with their reason codes); their notes, sealed under the destroyed key,
    # go with it (vault.dsr.notes).
    conn.execute(
        update(_REQUEST)
        .where(
            _REQUEST.c.customer_id.in_(ids),
            or_(_REQUEST.c.extension_note.is_not(None), _REQUEST.c.close_note.is_not(None)),
        )
        .values(extension_note=None, close_note=None)
    )
    # Close every open erasure request of these customers; record one for the others.
    request_of: dict[UUID, UUID] = {
        cid: rid
        for rid, cid in conn.execute(
            select(_REQUEST.c.id, _REQUEST.c.customer_id)
            .where(
                _REQUEST.c.customer_id.in_(ids),
                _REQUEST.c.kind == RequestKind.ERASURE,
                _REQUEST.c.status == RequestStatus.OPEN,
            )
            .order_by(_REQUEST.c.received_at.desc())
        )
    }
    open_for = set(request_of)
    if open_for:
        conn.execute(
            update(_REQUEST)
            .where(
                _REQUEST.c.customer_id.in_(list(open_for)),
                _REQUEST.c.kind == RequestKind.ERASURE,
                _REQUEST.c.status == RequestStatus.OPEN,
            )
            .values(status=RequestStatus.COMPLETED, handled_by=actor, closed_at=now)
        )
    due = due_at(now)
    new = [
        {
            "id": uuid4(),
            "customer_id": cid,
            "kind": RequestKind.ERASURE,
            "status": RequestStatus.COMPLETED,
            "received_at": now,
            "due_at": due,
            "extension_months": 0,
            "created_by": actor,
            "handled_by": actor,
            "closed_at": now,
            "created_at": now,
        }
        for cid in ids
        if cid not in open_for
    ]
    if new:
        conn.execute(insert(_REQUEST), new)
    request_of.update({row["customer_id"]: row["id"] for row in new})
    return request_of


def _inventory(session: Session, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    """What the erasure of ``ids`` is about to destroy (read before :func:`_shred`)."""
    held = customers_store.shred_inventory(session, ids)
    tokens = consent_store.shred_counts(session, ids)
    mails = mail_outbox.shred_counts(session, ids)
    return {cid: {**held[cid], **tokens[cid], "mails": mails[cid]} for cid in ids}


def _certify(
    session: Session,
    notary: Notary,
    inventory: dict[UUID, dict[str, Any]],
    request_of: dict[UUID, UUID],
    by: Caller,
    now: datetime,
) -> dict[UUID, Certificate]:
    """Sign, store and journal one certificate per erased customer (the caller's transaction;
    the journal lines are fsync'd before it commits)."""
    issued: dict[UUID, Certificate] = {}
    for cid, held in inventory.items():
        cert_id = uuid4()
        payload = {
            "certificate_id": str(cert_id),
            "iss": notary.issuer,
            "iat": int(now.timestamp()),
            "customer_id": str(cid),
            "erased_at": now.isoformat(),
            "destroyed": {
                "wrapped_key": {"kek_id": held["kek_id"]},
                "values": held["values"],
                "index_entries": held["index_entries"],
                "confirmation_tokens": held["confirmation_tokens"],
                "idempotency_answers": held["idempotency_answers"],
                "mails": held["mails"],
                "attributes": held["attributes"],
            },
            "dsr_request_id": str(request_of[cid]) if cid in request_of else None,
            "erased_by": by.actor,
            "request_id": by.request_id,
        }
        jws = notary.signer.sign_payload(payload, typ=CERTIFICATE_TYP)
        issued[cid] = Certificate(cert_id, cid, now, jws)
    _store_certificates(session, issued.values(), request_of)
    if notary.journal is not None:
        append_journal(notary.journal, issued.values())
    return issued


def _store_certificates(
    session: Session, certificates: Iterable[Certificate], request_of: dict[UUID, UUID]
) -> None:
    rows = [
        {
            "id": c.id,
            "customer_id": c.customer_id,
            "issued_at": c.issued_at,
            "dsr_request_id": request_of.get(c.customer_id),
            "certificate": c.jws,
        }
        for c in certificates
    ]
    if rows:
        session.connection().execute(insert(_CERTIFICATE), rows)


def certificate_of(session: Session, customer_id: UUID) -> Certificate | None:
    """The stored erasure certificate of a customer, or None (never erased)."""
    row = (
        session.connection()
        .execute(select(_CERTIFICATE).where(_CERTIFICATE.c.customer_id == customer_id))
        .first()
    )
    if row is None:
        return None
    return Certificate(row.id, row.customer_id, row.issued_at, row.certificate)


def verify_certificate(signer: Signer, token: str) -> dict[str, Any]:
    """The payload of an erasure certificate signed by this vault (``TokenInvalid`` if not)."""
    return signer.verify_payload(token, typ=CERTIFICATE_TYP)


# --- the erasure journal ---------------------------------------------------------------------


def append_journal(path: Path, certificates: Iterable[Certificate]) -> None:
    """Append one line per certificate (customer id, time, certificate id and the certificate
    itself: no PII) and fsync; the file is created 0600 (the directory fsync'd too)."""
    data = b"".join(
        json.dumps(
            {
                "customer_id": str(c.customer_id),
                "erased_at": c.issued_at.isoformat(),
                "certificate_id": str(c.id),
                "certificate": c.jws,
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for c in certificates
    )
    if not data:
        return
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class JournalEntry:
    customer_id: UUID
    erased_at: datetime
    certificate: Certificate


def read_journal(path: Path) -> Iterator[JournalEntry]:
    """The entries of an erasure journal, in order. A torn last line (a crash mid-append whose
    transaction then never committed) is skipped; any other bad line raises ``ValueError``."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            cid = UUID(doc["customer_id"])
            at = datetime.fromisoformat(doc["erased_at"])
            cert = Certificate(UUID(doc["certificate_id"]), cid, at, doc["certificate"])
        except (ValueError, KeyError, TypeError):
            if n == len(lines):  # torn last line, no newline after it
                return
            raise ValueError(f"{path}: line {n} is not an erasure journal entry") from None
        yield JournalEntry(cid, at, cert)


def reapply(
    *, session: Session, entries: Sequence[JournalEntry], by: Caller, now: datetime | None = None
) -> list[UUID]:
    """Replay journal entries on a restored database (``vault restore``): every customer the
    journal names that is still active there is shredded again (a legal hold in the old
    snapshot does not stop it: the erasure happened), audited as ``dsr.erasure`` with the
    reason ``journal_replay``, and gets its original certificate back. Customers the snapshot
    does not know are skipped; already erased ones only get a missing certificate restored.
    Idempotent. Returns the customers shredded again."""
    now = now or utcnow()
    by_customer = {e.customer_id: e for e in entries}
    done: list[UUID] = []
    for chunk in _chunks(list(by_customer)):
        rows = customers_store.lock_many(session, chunk)
        present = [cid for cid in chunk if cid in rows]
        active = [cid for cid in present if rows[cid][0] != CustomerStatus.ERASED]
        if active:
            _shred(session, active, by.actor, now)
            _emit_erased(session, active, now)
            _audit_erased(session, active, by, now, reason="journal_replay")
            done.extend(active)
        have = set(
            session.connection()
            .execute(
                select(_CERTIFICATE.c.customer_id).where(_CERTIFICATE.c.customer_id.in_(present))
            )
            .scalars()
        )
        _store_certificates(
            session, [by_customer[cid].certificate for cid in present if cid not in have], {}
        )
    return done


def finish_on_disk(engine: Engine, vacuum: Sequence[str] = ()) -> None:
    """After a committed erasure: remove what it deleted from the database's files
    (:func:`vault.db.scrub_deleted`), or raise :class:`ErasureIncomplete` (the erasure stays
    committed; the next checkpoint finishes the cleanup)."""
    if not scrub_deleted(engine, vacuum=vacuum):
        raise ErasureIncomplete()


def _finish_after_commit(session: Session, vacuum: Sequence[str] = ()) -> None:
    after_commit(session, partial(finish_on_disk, session.get_bind(), vacuum))


def _audit_erased(
    session: Session, ids: Sequence[UUID], by: Caller, now: datetime, reason: str | None = None
) -> None:
    """One ``dsr.erasure`` audit event per erased customer, in one batch."""
    event = {"actor": by.actor, "action": AuditAction.DSR_ERASURE, "request_id": by.request_id}
    if reason is not None:
        event["reason"] = reason
    audit_record.record_many(
        session=session, events=[{**event, "customer_id": cid, "now": now} for cid in ids]
    )


def _emit_erased(session: Session, ids: Sequence[UUID], now: datetime) -> None:
    for cid in ids:
        events_outbox.emit(
            session=session,
            type=EventType.CUSTOMER_ERASED,
            customer_id=cid,
            data={"erased_at": now.isoformat()},
            now=now,
        )


def erase(
    *,
    session: Session,
    customer_id: UUID,
    by: Caller,
    notary: Notary,
    now: datetime | None = None,
) -> Erased:
    """Erase one customer (crypto-shredding). 404 unknown, 410 already erased, 409 under a
    legal hold (``reason`` in the error body): an audited refusal, so every door that erases
    leaves the same evidence of it. Returns the tombstone and the signed certificate."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    if customer.legal_hold:
        raise LegalHold(
            "Erasure refused: the customer's data is under a legal hold (GDPR Art. 17(3)).",
            reason=customer.legal_hold_reason,
        ).audited(
            partial(
                _record_refused_erasure,
                customer_id=customer.id,
                by=by,
                now=now,
            )
        )
    names = customers_service.stored_attribute_names(session, customer.id)
    inventory = _inventory(session, [customer.id])
    request_of = _shred(session, [customer.id], by.actor, now, notary.mail_drop)
    certificates = _certify(session, notary, inventory, request_of, by, now)
    _emit_erased(session, [customer.id], now)
    record_audit(
        session,
        by,
        AuditAction.DSR_ERASURE,
        customer.id,
        now,
        attributes=names,
    )
    _finish_after_commit(session)
    session.expire(customer)
    session.refresh(customer)
    return Erased(customer, certificates[customer.id])


def _record_refused_erasure(
    session: Session, *, customer_id: UUID, now: datetime, by: Caller
) -> None:
    """The audit row of an erasure refused because of a legal hold."""
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.DSR_ERASURE,
        outcome="denied",
        customer_id=customer_id,
        reason="legal_hold",
        now=now,
    )


def erase_many(
    *,
    session: Session,
    customer_ids: Sequence[UUID],
    by: Caller,
    notary: Notary,
    now: datetime | None = None,
) -> EraseManyResult:
    """Erase many customers in the caller's one transaction (batch erasure, e.g. accounts
        closed long ago). Unknown, already erased and legally held customers are skipped and
        reported, not raised. Statements work on chunks of 500 ids; one certificate per erased
    customer (``result.certificates``)."""
    now = now or utcnow()
    result = EraseManyResult()
    wanted = list(dict.fromkeys(customer_ids))
    for chunk in _chunks(wanted):
        rows = customers_store.lock_many(session, chunk)
        ids: list[UUID] = []
        for cid in chunk:
            found = rows.get(cid)
            if found is None:
                result.not_found.append(cid)
            elif found[0] == CustomerStatus.ERASED:
                result.already_erased.append(cid)
            elif found[1]:
                result.legal_hold.append(cid)
            else:
                ids.append(cid)
        if not ids:
            continue
        inventory = _inventory(session, ids)
        request_of = _shred(session, ids, by.actor, now, notary.mail_drop)
        result.certificates.update(_certify(session, notary, inventory, request_of, by, now))
        _emit_erased(session, ids, now)
        _audit_erased(session, ids, by, now)
        result.erased.extend(ids)
    if result.erased:
        _finish_after_commit(session, ERASED_TABLES)
    return result
