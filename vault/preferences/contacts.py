"""Reported contacts: ``POST /v1/contacts``, NDJSON, one contact a sending tool sent per line::

    {"customer_id": "…", "purpose": "newsletter", "contact_channel": "email",
     "sent_at": "2026-12-01T09:00:00Z"}

Frequency caps count these, not exports: a customer is left out of an audience once a contact
for the purpose lies in the current window of their frequency
(:func:`vault.policy.decision.decide_contact`). Each accepted line is a ``contact`` row and a
``contact.recorded`` audit event (outcome ``allowed``, counted as a use of the data: the
dossier's "last used", the self-service "who used my data").

The body is cut into lines as it arrives by the import's :class:`LineSplitter` with the
import's limits; each chunk is validated in Python and stored in one short transaction.
Bad lines are rejected with a report entry (line number, code, sentence — never the value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.customers import store as customers_store
from vault.customers.schemas import CustomerStatus
from vault.db import in_range
from vault.policy import Policy
from vault.preferences import store
from vault.provenance import Caller

MAX_ERRORS_REPORTED = 1000
CLOCK_SKEW = timedelta(minutes=2)
KEYS = frozenset({"customer_id", "purpose", "contact_channel", "sent_at"})


class LineError(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass
class ContactReport:
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, code: str, detail: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append({"line": line, "error": code, "detail": detail})

    def merge(self, other: ContactReport) -> None:
        self.received += other.received
        self.accepted += other.accepted
        self.rejected += other.rejected
        room = MAX_ERRORS_REPORTED - len(self.errors)
        if room > 0:
            self.errors.extend(other.errors[:room])

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": self.errors,
            "errors_truncated": self.rejected > len(self.errors),
        }


@dataclass(frozen=True, slots=True)
class ParsedContact:
    line: int
    customer_id: UUID
    purpose: str
    contact_channel: str
    sent_at: datetime


def parse_line(
    line: int, raw: bytes | None, *, policy: Policy, client_purposes: frozenset[str], now: datetime
) -> ParsedContact:
    """One line, checked; or :class:`LineError`."""
    if raw is None:
        raise LineError("line_too_long", "The line is longer than 65,536 bytes.")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("invalid_json", "The line is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise LineError("invalid_line", "Each line must be a JSON object.")
    if set(doc) != KEYS:
        raise LineError(
            "invalid_line",
            "Each line has exactly customer_id, purpose, contact_channel and sent_at.",
        )
    try:
        customer_id = UUID(str(doc["customer_id"]))
    except ValueError:
        raise LineError("invalid_customer_id", "customer_id must be a UUID.") from None
    purpose = policy.purposes.get(doc["purpose"]) if isinstance(doc["purpose"], str) else None
    if purpose is None:
        raise LineError("unknown_purpose", "No purpose with this id in the policy.")
    if purpose.id not in client_purposes:
        raise LineError(
            "purpose_not_permitted_for_client", "This client is not registered for the purpose."
        )
    channel = doc["contact_channel"]
    if channel not in [c.value for c in purpose.contact_channels]:
        raise LineError(
            "unknown_contact_channel",
            "The purpose does not contact customers by this contact channel.",
        )
    sent_at = _instant(doc["sent_at"])
    if sent_at > now + CLOCK_SKEW:
        raise LineError("sent_at_in_future", "sent_at lies in the future.")
    return ParsedContact(line, customer_id, purpose.id, channel, sent_at)


def _instant(value: Any) -> datetime:
    message = "sent_at must be an ISO 8601 instant with a time zone, 1900 to 2100."
    if not isinstance(value, str) or len(value) > 40:
        raise LineError("invalid_sent_at", message)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise LineError("invalid_sent_at", message) from None
    if at.tzinfo is None or not in_range(at):
        raise LineError("invalid_sent_at", message)
    return at


def parse_chunk(
    chunk: list[tuple[int, bytes | None]],
    *,
    policy: Policy,
    client_purposes: frozenset[str],
    now: datetime,
) -> tuple[list[ParsedContact], ContactReport]:
    """The good lines of a chunk, and a report of the bad ones (no database)."""
    report = ContactReport(received=len(chunk))
    good = []
    for line, raw in chunk:
        try:
            good.append(
                parse_line(line, raw, policy=policy, client_purposes=client_purposes, now=now)
            )
        except LineError as err:
            report.reject(line, err.code, err.detail)
    return good, report


def store_chunk(
    *,
    session: Session,
    parsed: list[ParsedContact],
    report: ContactReport,
    by: Caller,
    client_id: str,
    now: datetime,
) -> None:
    """Store the parsed contacts of known, not erased customers (their rows locked, so an
    erasure cannot slip in between), audit each; reject the others in ``report``."""
    statuses = customers_store.lock_many(session, sorted({p.customer_id for p in parsed}))
    rows, events = [], []
    for p in parsed:
        status = statuses.get(p.customer_id)
        if status is None:
            report.reject(p.line, "customer_not_found", "No customer with this id.")
            continue
        if status[0] == CustomerStatus.ERASED:
            report.reject(p.line, "customer_erased", "This customer has been erased.")
            continue
        rows.append(
            {
                "customer_id": p.customer_id,
                "purpose": p.purpose,
                "contact_channel": p.contact_channel,
                "sent_at": p.sent_at,
                "client_id": client_id,
                "recorded_at": now,
            }
        )
        events.append(
            {
                "actor": by.actor,
                "action": AuditAction.CONTACT_RECORDED,
                "outcome": "allowed",
                "customer_id": p.customer_id,
                "purpose": p.purpose,
                "details": {"contact_channel": p.contact_channel},
                "request_id": by.request_id,
                "now": now,
            }
        )
    store.insert_contacts(session, rows)
    audit_record.record_many(session=session, events=events)
    report.accepted += len(rows)
