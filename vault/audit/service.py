"""Tamper-evident audit log.

Design
======

**Writing is one INSERT.** :func:`record` (and :func:`record_many`, one ``executemany`` for bulk
exports) inserts a row into ``audit_event`` inside the caller's transaction: the event commits
with the change or release it describes, or not at all, and the caller answers only after the
commit. Writers take no lock beyond their own row; the row gets its id from the database and has
no ``seq`` and no ``hash`` yet.

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

The sealer runs in a background thread of every server process
(:func:`vault.audit.sealer.start_sealer`, every ``VAULT_AUDIT_SEAL_INTERVAL`` seconds, 0.5 s by
default), on demand before every verification, and as ``vault audit seal``.

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

**Verification** (:func:`verify`) streams ``(seq, hash, body)`` ordered by ``seq``, recomputes
every hash and checks every checkpoint signature and hash, and reports the first ``seq`` that is
wrong: a changed or reordered row (its own seq), a missing or duplicated seq, a checkpoint whose
signature is wrong (the checkpoint's seq), a chain whose hashes were rewritten consistently (the
first seq after the last checkpoint that still matched), a cut tail (the first missing seq).

**Retention** (:func:`purge`, ``vault audit purge``): events older than
``VAULT_AUDIT_RETENTION_DAYS`` are deleted only up to a signed checkpoint ``A``. The purge writes
a permit row into ``audit_purge`` (the delete trigger allows deleting ``seq <= up_to_seq`` and
nothing else), deletes, and records a chained ``audit.purged`` event naming ``A``. Verification
then starts from checkpoint ``A``: its signature vouches for the hash the remaining chain
continues from, and the ``audit.purged`` event inside the verified chain must name ``A``.

**No PII.** Events carry ids, purpose and attribute *names*, outcomes and machine-readable
reasons. Every string field is checked against a strict pattern; ``details`` values that look
like contact data (an ``@``, a run of 8 or more digits outside a UUID, an integer of 10 or more
digits) are refused with :class:`AuditPiiRefused`. This is a defensive net, not a licence to pass
arbitrary data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import insert
from sqlmodel import Session

from vault.audit.models import AuditEvent
from vault.db import utcnow
from vault.errors import VaultError

OUTCOMES = frozenset({"success", "allowed", "denied", "error"})
MAX_DETAILS_BYTES = 2048

_ACTOR = re.compile(r"([a-z][a-z_]{1,15})(?::([A-Za-z0-9._:\-]{1,200}))?")
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_REASON = re.compile(r"[a-z][a-z0-9_.:\-]{0,127}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_DIGIT_RUN = re.compile(r"\d{8,}")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)

_TABLE = AuditEvent.__table__  # type: ignore[attr-defined]
_INSERT = insert(_TABLE)


class InvalidAuditEvent(VaultError):
    code = "invalid_audit_event"
    status = 500  # a programming error in the caller, never the client's fault
    default_detail = "An audit event could not be recorded."


class AuditPiiRefused(InvalidAuditEvent):
    code = "audit_pii_refused"
    default_detail = "An audit event carried a value that looks like personal data."


@lru_cache(maxsize=4096)
def _split_actor(actor: str) -> tuple[str, str | None]:
    m = _ACTOR.fullmatch(actor) if isinstance(actor, str) else None
    if m is None:
        raise InvalidAuditEvent("actor must look like 'client:<id>', 'customer:<uuid>' or 'cli'.")
    return m.group(1), m.group(2)


@lru_cache(maxsize=1024)
def _check_action(action: str) -> str:
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise InvalidAuditEvent("action must be a dotted lower-case name such as 'data.read'.")
    return action


@lru_cache(maxsize=1024)
def _check_name(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidAuditEvent(f"{what} must be a snake_case name.")
    return value


@lru_cache(maxsize=1024)
def _check_attributes(names: tuple[str, ...]) -> str:
    for n in names:
        _check_name(n, "attribute")
    return ",".join(names)


@lru_cache(maxsize=1024)
def _check_reason(reason: str | None) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        raise InvalidAuditEvent("reason must be a machine-readable code such as 'no_consent'.")
    return reason


def _check_request_id(request_id: str | None) -> str | None:
    if request_id is None or request_id == "":
        return None
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise InvalidAuditEvent("request_id must be a short token.")
    return request_id


def _looks_like_pii(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return False
    if isinstance(value, int):
        return abs(value) >= 10**9
    if isinstance(value, str):
        if "@" in value:
            return True
        return bool(_DIGIT_RUN.search(_UUID.sub("", value)))
    return True  # other types are not allowed at all


def _check_details_value(value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        if depth > 1:
            raise InvalidAuditEvent("details may nest one level at most.")
        for k, v in value.items():
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise InvalidAuditEvent("details keys must be snake_case names.")
            _check_details_value(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            if isinstance(v, Mapping | list | tuple):
                raise InvalidAuditEvent("details lists hold plain values only.")
            _check_details_value(v, depth)
    elif _looks_like_pii(value):
        raise AuditPiiRefused(
            "details refused: a value looks like contact data or is not a plain value."
        )


def canonical_details(details: Mapping[str, Any] | None) -> str | None:
    """Validate ``details`` and return its canonical JSON (sorted keys, compact), or None."""
    if not details:
        return None
    if not isinstance(details, Mapping):
        raise InvalidAuditEvent("details must be a JSON object.")
    _check_details_value(details, 0)
    text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
    if len(text) > MAX_DETAILS_BYTES:
        raise InvalidAuditEvent("details are too large for an audit event.")
    return text


def _customer_id(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidAuditEvent("customer_id must be a UUID.") from None


def _row(
    *,
    actor: str,
    action: str,
    outcome: str = "success",
    customer_id: UUID | str | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    request_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    actor_type, actor_id = _split_actor(actor)
    if outcome not in OUTCOMES:
        raise InvalidAuditEvent(f"outcome must be one of {', '.join(sorted(OUTCOMES))}.")
    if isinstance(attributes, str):
        attributes = (attributes,)
    return {
        "occurred_at": now or utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": _check_action(action),
        "outcome": outcome,
        "customer_id": _customer_id(customer_id),
        "purpose": _check_name(purpose, "purpose"),
        "attributes": _check_attributes(tuple(attributes)),
        "reason": _check_reason(reason),
        "request_id": _check_request_id(request_id),
        "details": canonical_details(details),
    }


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    outcome: str = "success",
    customer_id: UUID | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    request_id: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit event in the caller's transaction (one INSERT; the caller commits).

    Raises :class:`InvalidAuditEvent` (or :class:`AuditPiiRefused`) for malformed input: the
    caller's transaction must then fail, since an unaudited release is not allowed."""
    row = _row(
        actor=actor,
        action=action,
        outcome=outcome,
        customer_id=customer_id,
        purpose=purpose,
        attributes=attributes,
        reason=reason,
        request_id=request_id,
        details=details,
        now=now,
    )
    session.execute(_INSERT, [row])


def record_many(*, session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Write many audit events with one ``executemany`` (bulk exports). Each mapping takes the
    keyword arguments of :func:`record` except ``session``; ``now`` defaults to one shared now."""
    if not events:
        return
    now = utcnow()
    rows = []
    for event in events:
        if "now" not in event or event["now"] is None:
            event = {**event, "now": now}
        try:
            rows.append(_row(**event))
        except TypeError:
            raise InvalidAuditEvent("An audit event has unknown keys.") from None
    session.execute(_INSERT, rows)


def actor_text(actor_type: str, actor_id: str | None) -> str:
    return f"{actor_type}:{actor_id}" if actor_id else actor_type


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
