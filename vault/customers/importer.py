"""Bulk import of customers (and their initial consents) from NDJSON.

One line per customer::

    {"external_id": "CRM-17", "attributes": {"email": "…", …},
     "consents": [{"purpose": "newsletter", "status": "confirmed", "channel": "web",
                   "occurred_at": "2025-03-01T10:00:00Z", "late_import": true,
                   "method": "legacy_form"}]}

Bad lines are rejected with a report entry (line number, code, attribute, sentence — never the
value); good lines are kept. Lines are processed in chunks: values are validated and encrypted in
Python (:func:`prepare_chunk`, no database), and customers, values, blind-index rows, consent
events and consent states go to the database with one ``executemany`` per table and chunk
(:func:`store_chunk`). Every consent event gets its signed receipt like any other. For double
opt-in purposes an import may state ``confirmed``: the importing system attests a completed
double opt-in it ran itself (method and evidence say how).

Over HTTP the body is never held whole: :class:`LineSplitter` cuts lines as the bytes arrive,
counts them against the request's line limit and never buffers more of a line than
:data:`MAX_LINE_BYTES`; each chunk commits on its own, so other requests wait at most for one
chunk, never for the whole import. :func:`one_import_per_client` lets each client run one
import at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.errors import ChannelNotAllowed
from vault.consent.evidence import clean_evidence
from vault.consent.schemas import Channel
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.customers.service import EXTERNAL_ID, clean_external_id
from vault.db import utcnow
from vault.errors import Conflict, InvalidRequest, UnknownAttribute, VaultError
from vault.policy import Policy
from vault.policy.values import index_form, normalise
from vault.provenance import Caller

MAX_LINE_BYTES = 65_536
MAX_ERRORS_REPORTED = 1000
CHUNK_LINES = 1000
# A chunk is also cut when its lines hold this many bytes, so a chunk of long lines stays small.
CHUNK_BYTES = 4 * 1024 * 1024
IMPORT_STATUSES = {"granted", "withdrawn", "refused", "confirmed"}


class LineError(Exception):
    def __init__(self, code: str, detail: str, attribute: str | None = None):
        super().__init__(detail)
        self.code, self.detail, self.attribute = code, detail, attribute


class TooManyLines(InvalidRequest):
    code = "too_many_lines"


class ImportInProgress(Conflict):
    code = "import_in_progress"
    default_detail = (
        "This client is already running an import; send the next one when it has answered."
    )


@dataclass
class ImportReport:
    received: int = 0
    created: int = 0
    consents: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, err: LineError) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            entry = {"line": line, "error": err.code, "detail": err.detail}
            if err.attribute:
                entry["attribute"] = err.attribute
            self.errors.append(entry)

    def merge(self, other: ImportReport) -> None:
        """Add a committed chunk's report to this one."""
        self.received += other.received
        self.created += other.created
        self.consents += other.consents
        self.rejected += other.rejected
        room = MAX_ERRORS_REPORTED - len(self.errors)
        if room > 0:
            self.errors.extend(other.errors[:room])

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "created": self.created,
            "consents": self.consents,
            "rejected": self.rejected,
            "errors": self.errors,
            "errors_truncated": self.rejected > len(self.errors),
        }


@dataclass
class _Row:
    line: int
    customer_id: UUID
    values: dict[str, Any]
    index: list[tuple[str, bytes]]
    consents: list[dict[str, Any]]
    db: dict[str, Any] = field(default_factory=dict)  # its rows, once built (prepare_chunk)


def _parse_time(text: Any, now: datetime, backdate_days: int, late_import: Any) -> datetime:
    """A consent's ``occurred_at``: ISO 8601 with a zone, then the consent service's one rule
    (:func:`vault.consent.service.check_occurred_at`: 1900 to 2100, not ahead, not further back
    than the horizon unless ``late_import``)."""
    if not isinstance(late_import, bool):
        raise LineError("invalid_consent", "late_import must be true or false.")
    value = None
    if text is not None:
        if not isinstance(text, str):
            raise LineError("invalid_consent", "occurred_at must be an ISO 8601 string.")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise LineError("invalid_consent", "occurred_at is not an ISO 8601 time.") from None
        if value.tzinfo is None:
            raise LineError("invalid_consent", "occurred_at needs a time zone.")
    try:
        return consent_service.check_occurred_at(
            value, now=now, backdate_days=backdate_days, late_import=late_import
        )
    except VaultError as exc:
        raise LineError(exc.code, exc.detail) from None


def _parse_line(
    raw: bytes | None,
    line: int,
    policy: Policy,
    envelope: Envelope,
    now: datetime,
    backdate_days: int,
) -> _Row:
    if raw is None or len(raw) > MAX_LINE_BYTES:  # None: LineSplitter dropped an overlong line
        raise LineError("line_too_long", f"A line may have at most {MAX_LINE_BYTES} bytes.")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("invalid_json", "The line is not a JSON object.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("attributes", {}), dict):
        raise LineError("invalid_json", "The line must be an object with an 'attributes' object.")
    if set(doc) - {"attributes", "external_id", "consents"}:  # keys are input: not echoed
        raise LineError(
            "invalid_json", "A line may have only the keys attributes, external_id and consents."
        )
    values: dict[str, Any] = {}
    for name, rawv in doc.get("attributes", {}).items():
        attr = policy.attributes.get(name)
        if attr is None:  # the name is input (an e-mail address as a key?): never echoed
            raise LineError(UnknownAttribute.code, UnknownAttribute.default_detail)
        if rawv is None:
            continue
        try:
            values[name] = normalise(attr, rawv)
        except VaultError as exc:
            raise LineError(exc.code, exc.detail, name) from None
    customer_id = uuid4()
    index = [
        (n, envelope.blind_index(n, index_form(v)))
        for n, v in values.items()
        if policy.attributes[n].searchable
    ]
    external_id = doc.get("external_id")
    if external_id is not None:
        if not isinstance(external_id, str) or not 0 < len(external_id.strip()) <= 200:
            raise LineError("invalid_external_id", "external_id must be 1 to 200 characters.")
        try:
            external_id = clean_external_id(external_id)
        except VaultError as exc:
            raise LineError(exc.code, exc.detail, EXTERNAL_ID) from None
        index.append((EXTERNAL_ID, envelope.blind_index(EXTERNAL_ID, external_id)))
    consents = []
    raw_consents = doc.get("consents", [])
    if not isinstance(raw_consents, list) or len(raw_consents) > 50:
        raise LineError("invalid_consent", "'consents' must be a list of at most 50 entries.")
    for c in raw_consents:
        if not isinstance(c, dict):
            raise LineError("invalid_consent", "Each consent must be an object.")
        purpose = policy.purposes.get(str(c.get("purpose", ""))[:64])
        if purpose is None:
            raise LineError("unknown_purpose", "A consent names an unknown purpose.")
        if not purpose.needs_consent:
            raise LineError(
                "consent_not_applicable", f"Purpose '{purpose.id}' is not based on consent."
            )
        status = c.get("status")
        if status not in IMPORT_STATUSES or (status == "confirmed" and not purpose.double_opt_in):
            raise LineError("invalid_consent_status", f"Invalid status for '{purpose.id}'.")
        if status == "granted" and purpose.double_opt_in:
            status = "pending_confirmation"
        channel = c.get("channel", "api")
        if channel not in Channel.__members__.values():
            raise LineError("invalid_channel", "Unknown consent channel.")
        if channel == Channel.SELFSERVICE:  # the customer's own page; only it records that
            raise LineError(ChannelNotAllowed.code, ChannelNotAllowed.default_detail)
        method = c.get("method", "import")
        if not isinstance(method, str) or not 0 < len(method) <= 64:
            raise LineError("invalid_consent", "method must be 1 to 64 characters.")
        language = c.get("language", "de")
        if language not in ("de", "en"):
            raise LineError("invalid_consent", "language must be de or en.")
        try:
            evidence = clean_evidence(c.get("evidence"))
        except VaultError as exc:
            raise LineError(exc.code, exc.detail) from None
        consents.append(
            {
                "purpose": purpose,
                "status": status,
                "channel": channel,
                "method": method,
                "language": language,
                "occurred_at": _parse_time(
                    c.get("occurred_at"), now, backdate_days, c.get("late_import", False)
                ),
                "evidence": evidence,
                "late_import": c.get("late_import", False),
            }
        )
    return _Row(line, customer_id, values, index, consents)


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        chunk.append((n, raw))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


Chunk = list[tuple[int, bytes | None]]


class LineSplitter:
    """NDJSON lines cut from a body as its bytes arrive, in numbered chunks ready for
    :func:`prepare_chunk`; nothing of the body is kept beyond the chunk being filled.

    Lines end with ``\\n`` (``\\r\\n`` too); a blank line counts (for the numbers and the limit)
    but is not imported. A line longer than :data:`MAX_LINE_BYTES` is not buffered: its bytes are
    dropped as they come and it is handed on as ``None`` (rejected ``line_too_long``). The line
    after ``max_lines`` raises :class:`TooManyLines` as soon as its first byte arrives: the lines
    of the chunk being filled are then not imported, chunks handed on before stay."""

    def __init__(self, *, max_lines: int, chunk_lines: int = CHUNK_LINES):
        self.max_lines = max_lines
        self.chunk_lines = chunk_lines
        self.lines = 0  # lines completed so far
        self._tail = bytearray()  # the line being received
        self._overlong = False
        self._chunk: Chunk = []
        self._chunk_bytes = 0

    def feed(self, data: bytes) -> Iterator[Chunk]:
        """The chunks that ``data`` completes."""
        start, end = 0, len(data)
        while start < end:
            if self.lines >= self.max_lines:
                raise self._too_many()
            nl = data.find(b"\n", start)
            stop = end if nl < 0 else nl
            if not self._overlong:
                if len(self._tail) + stop - start > MAX_LINE_BYTES + 1:  # + 1: a '\r'
                    self._overlong = True
                    self._tail.clear()
                else:
                    self._tail += data[start:stop]
            if nl < 0:
                return
            start = nl + 1
            if self._end_line():
                yield self._take()

    def finish(self) -> Iterator[Chunk]:
        """The last chunk, once the body has ended (a last line without ``\\n`` included)."""
        if self._tail or self._overlong:
            self._end_line()
        if self._chunk:
            yield self._take()

    def _end_line(self) -> bool:
        """Hand on the line received; whether the chunk is full."""
        self.lines += 1
        if self._overlong:
            self._chunk.append((self.lines, None))
            self._overlong = False
        else:
            raw = bytes(self._tail.removesuffix(b"\r"))
            self._tail.clear()
            if raw.strip():
                self._chunk.append((self.lines, raw))
                self._chunk_bytes += len(raw)
        return len(self._chunk) >= self.chunk_lines or self._chunk_bytes >= CHUNK_BYTES

    def _take(self) -> Chunk:
        chunk, self._chunk, self._chunk_bytes = self._chunk, [], 0
        return chunk

    def _too_many(self) -> TooManyLines:
        return TooManyLines(f"At most {self.max_lines} lines per request.")


class _Running:
    """The clients with an import running in this process (every thread and the event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[str] = set()

    @contextmanager
    def hold(self, client_id: str) -> Iterator[None]:
        with self._lock:
            if client_id in self._clients:
                raise ImportInProgress()
            self._clients.add(client_id)
        try:
            yield
        finally:
            with self._lock:
                self._clients.discard(client_id)


_running = _Running()


def one_import_per_client(client_id: str) -> Any:
    """``with one_import_per_client(client_id):`` — 409 ``import_in_progress`` while another
    import of this client runs in this process (so an import's chunks never race a second
    import of the same file for the same unique values)."""
    return _running.hold(client_id)


@dataclass
class PreparedChunk:
    """A chunk validated, encrypted and signed, not yet stored: its lines' report (rejections
    so far) and the rows of its good lines."""

    report: ImportReport
    rows: list[_Row]
    now: datetime
    by: Caller
    envelope: Envelope
    policy: Policy
    settings: Settings


def prepare_chunk(
    *,
    envelope: Envelope,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    chunk: Chunk,
    by: Caller,
    may_write_consent: bool = True,
) -> PreparedChunk:
    """The CPU work of a chunk, without the database (so it holds no transaction): validate,
    normalise, encrypt, sign the receipts."""
    now = utcnow()
    report = ImportReport()
    rows: list[_Row] = []
    for line, raw in chunk:
        report.received += 1
        try:
            row = _parse_line(raw, line, policy, envelope, now, settings.consent_backdate_days)
            if row.consents and not may_write_consent:
                raise LineError("insufficient_scope", "Consents need the scope consent:write.")
            rows.append(row)
        except LineError as err:
            report.reject(line, err)
    for r in rows:
        _build(
            r, envelope=envelope, policy=policy, signer=signer, settings=settings, by=by, now=now
        )
    return PreparedChunk(report, rows, now, by, envelope, policy, settings)


def _build(
    r: _Row,
    *,
    envelope: Envelope,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    by: Caller,
    now: datetime,
) -> None:
    key, wrapped, kek_id = envelope.new_data_key(r.customer_id)
    r.db["customer"] = {
        "id": r.customer_id,
        "status": "active",
        "dek_wrapped": wrapped,
        "kek_id": kek_id,
        "created_at": now,
        "updated_at": now,
        "objections": "",
    }
    r.db["values"] = [
        {
            "customer_id": r.customer_id,
            "attribute": name,
            "ciphertext": key.encrypt(name, orjson.dumps(v)),
            "updated_at": now,
        }
        for name, v in r.values.items()
    ]
    events = [
        consent_store.event_row(
            signer=signer,
            issuer=settings.issuer,
            policy=policy,
            statement=consent_store.Statement(
                customer_id=r.customer_id,
                purpose=c["purpose"],
                version=c["purpose"].version,
                status=c["status"],
                channel=c["channel"],
                method=c["method"],
                actor="customer",
                language=c["language"],
                occurred_at=c["occurred_at"],
                evidence=c["evidence"],
            ),
            recorded_by=by.actor,
            now=now,
        )
        for c in r.consents
    ]
    r.db["events"] = events
    r.db["states"] = consent_store.state_rows(events, now)


def _request_confirmations(session: Session, prepared: PreparedChunk, kept: list[_Row]) -> None:
    """Double opt-in lines with status ``granted`` (stored as ``pending_confirmation``): one
    confirmation mail each, queued in the chunk's transaction, to the line's own e-mail
    address in its ``preferred_language``. ``confirmed`` lines (the importer attests the double
    opt-in ran) get none; a line without an e-mail address stays pending without a mail."""
    for r in kept:
        for event, c in zip(r.db["events"], r.consents, strict=True):
            if event["status"] != "pending_confirmation":
                continue
            email = r.values.get("email")
            language = r.values.get("preferred_language")
            consent_service.request_confirmation(
                session=session,
                policy=prepared.policy,
                settings=prepared.settings,
                envelope=prepared.envelope,
                customer_id=r.customer_id,
                purpose=c["purpose"],
                event_id=event["id"],
                now=prepared.now,
                to=email if isinstance(email, str) and email else None,
                language=language if isinstance(language, str) else None,
            )


STORE_ATTEMPTS = 3


def store_chunk(*, session: Session, prepared: PreparedChunk, report: ImportReport) -> None:
    """Insert a prepared chunk (the caller commits): lines whose unique values (searchable
    attributes, external id) another customer or an earlier line of the chunk holds are
    rejected ``duplicate_value``; ``report`` gets the chunk's counts.

    On PostgreSQL another transaction (an import by another client, a create) may insert the
    same unique value between our check and our insert: the unique index then makes us wait for
    it and fail. The chunk runs in a savepoint and is checked again once the other has committed
    (its values now count as taken), so such a line is ``duplicate_value``, never a 500. SQLite
    serialises writers: no other writer runs between check and insert."""
    if session.connection().dialect.name == "sqlite":
        _store_chunk(session, prepared, report)
        return
    for attempt in range(STORE_ATTEMPTS):
        part = ImportReport()
        try:
            with session.begin_nested():
                _store_chunk(session, prepared, part)
        except IntegrityError:
            if attempt == STORE_ATTEMPTS - 1:
                raise ImportConflict() from None
            continue
        report.merge(part)
        return


class ImportConflict(Conflict):
    code = "import_conflict"
    default_detail = (
        "Other writers kept inserting the same unique values; nothing of this chunk was stored. "
        "Send it again."
    )


def _store_chunk(session: Session, prepared: PreparedChunk, report: ImportReport) -> None:
    part = ImportReport()
    part.merge(prepared.report)
    now, by = prepared.now, prepared.by
    rows = prepared.rows
    # searchable values and external ids are unique: within the chunk and against the vault
    seen: dict[bytes, int] = {}
    digests = [d for r in rows for _, d in r.index]
    taken = (
        set(
            session.execute(select(BlindIndex.digest).where(BlindIndex.digest.in_(digests)))
            .scalars()
            .all()
        )
        if digests
        else set()
    )
    kept: list[_Row] = []
    for r in rows:
        clash = next(((n, d) for n, d in r.index if d in taken or d in seen), None)
        if clash is not None:
            part.reject(
                r.line,
                LineError(
                    "duplicate_value", f"Another customer already has this {clash[0]}.", clash[0]
                ),
            )
            continue
        for _, d in r.index:
            seen[d] = r.line
        kept.append(r)
    if kept:
        values = [v for r in kept for v in r.db["values"]]
        index = [
            {"attribute": n, "digest": d, "customer_id": r.customer_id}
            for r in kept
            for n, d in r.index
        ]
        events = [e for r in kept for e in r.db["events"]]
        audit = [
            {
                "actor": by.actor,
                "action": AuditAction.CUSTOMER_IMPORTED,
                "customer_id": r.customer_id,
                "attributes": sorted(r.values),
                "request_id": by.request_id,
                "now": now,
                # the importer vouched for consents dated beyond the backdating horizon
                **(
                    {"details": {"late_import": True}}
                    if any(c["late_import"] for c in r.consents)
                    else {}
                ),
            }
            for r in kept
        ]
        # Core inserts on the connection: the ORM's bulk path costs more than the SQL here.
        conn = session.connection()
        conn.execute(insert(Customer.__table__), [r.db["customer"] for r in kept])
        if values:
            conn.execute(insert(CustomerValue.__table__), values)
        if index:
            conn.execute(insert(BlindIndex.__table__), index)
        consent_store.insert_events(session, events)
        consent_store.insert_states(session, [s for r in kept for s in r.db["states"]])
        audit_record.record_many(session=session, events=audit)
        _request_confirmations(session, prepared, kept)
        part.created += len(kept)
        part.consents += len(events)
    report.merge(part)


def import_chunk(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    chunk: Chunk,
    report: ImportReport,
    by: Caller,
    may_write_consent: bool = True,
) -> None:
    """Validate, encrypt and insert one chunk of lines (the caller commits)."""
    prepared = prepare_chunk(
        envelope=envelope,
        policy=policy,
        signer=signer,
        settings=settings,
        chunk=chunk,
        by=by,
        may_write_consent=may_write_consent,
    )
    store_chunk(session=session, prepared=prepared, report=report)


def chunks(lines: Iterable[bytes], size: int = CHUNK_LINES) -> Iterator[list[tuple[int, bytes]]]:
    """Numbered, non-blank lines in chunks of ``size``."""
    return _chunks(lines, size)
