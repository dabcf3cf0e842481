"""Bulk import of customers (and their initial consents) from NDJSON.

One line per customer::

    {"external_id": "CRM-17", "attributes": {"email": "…", …},
     "consents": [{"purpose": "newsletter", "status": "confirmed", "channel": "web",
                   "occurred_at": "2025-03-01T10:00:00Z", "late_import": true,
                   "method": "legacy_form"}]}

Bad lines are rejected with a report entry (line number, code, attribute, sentence — never the
value); good lines are kept. Lines are processed in chunks: values are validated and encrypted in
Python, and customers, values, blind-index rows, consent events and consent states go to the
database with one ``executemany`` per table and chunk. Every consent event gets its signed
receipt like any other. For double opt-in purposes an import may state ``confirmed``: the
importing system attests a completed double opt-in it ran itself (method and evidence say how).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from sqlalchemy import insert, select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.evidence import clean_evidence
from vault.consent.schemas import Channel
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.customers.service import EXTERNAL_ID, clean_external_id
from vault.db import utcnow
from vault.errors import UnknownAttribute, VaultError
from vault.policy import Policy
from vault.policy.values import index_form, normalise
from vault.provenance import Caller

MAX_LINE_BYTES = 65_536
MAX_ERRORS_REPORTED = 1000
IMPORT_STATUSES = {"granted", "withdrawn", "refused", "confirmed"}


class LineError(Exception):
    def __init__(self, code: str, detail: str, attribute: str | None = None):
        super().__init__(detail)
        self.code, self.detail, self.attribute = code, detail, attribute


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
    raw: bytes, line: int, policy: Policy, envelope: Envelope, now: datetime, backdate_days: int
) -> _Row:
    if len(raw) > MAX_LINE_BYTES:
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


def import_chunk(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    chunk: list[tuple[int, bytes]],
    report: ImportReport,
    by: Caller,
    may_write_consent: bool = True,
) -> None:
    """Validate, encrypt and insert one chunk of lines (the caller commits)."""
    now = utcnow()
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
            report.reject(
                r.line,
                LineError(
                    "duplicate_value", f"Another customer already has this {clash[0]}.", clash[0]
                ),
            )
            continue
        for _, d in r.index:
            seen[d] = r.line
        kept.append(r)
    if not kept:
        return
    customers, values, index, events, states, audit = [], [], [], [], [], []
    for r in kept:
        key, wrapped, kek_id = envelope.new_data_key(r.customer_id)
        customers.append(
            {
                "id": r.customer_id,
                "status": "active",
                "dek_wrapped": wrapped,
                "kek_id": kek_id,
                "created_at": now,
                "updated_at": now,
                "objections": "",
            }
        )
        for name, v in r.values.items():
            values.append(
                {
                    "customer_id": r.customer_id,
                    "attribute": name,
                    "ciphertext": key.encrypt(name, orjson.dumps(v)),
                    "updated_at": now,
                }
            )
        index.extend(
            {"attribute": n, "digest": d, "customer_id": r.customer_id} for n, d in r.index
        )
        row_events = [
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
        events.extend(row_events)
        states.extend(consent_store.state_rows(row_events, now))
        audit.append(
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
        )
    # Core inserts on the connection: the ORM's bulk path costs more than the SQL here.
    conn = session.connection()
    conn.execute(insert(Customer.__table__), customers)
    if values:
        conn.execute(insert(CustomerValue.__table__), values)
    if index:
        conn.execute(insert(BlindIndex.__table__), index)
    consent_store.insert_events(session, events)
    consent_store.insert_states(session, states)
    audit_record.record_many(session=session, events=audit)
    report.created += len(kept)
    report.consents += len(events)


def chunks(lines: Iterable[bytes], size: int = 1000) -> Iterator[list[tuple[int, bytes]]]:
    """Numbered, non-blank lines in chunks of ``size``."""
    return _chunks(lines, size)
