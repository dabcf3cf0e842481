"""The retention job: ``vault retention run [--now ISO]``.

What it deletes (docs/dsr.md has the reasoning):

- **Values past their retention**: a ``customer_value`` whose ``updated_at`` lies more than the
  attribute's effective retention before ``now`` (:func:`vault.policy.facts.effective_retention`:
  the attribute's own ``retention_days``, else the longest ``retention_days`` of the purposes
  using it if all of them set one), with its blind-index row. Customers under a legal hold or a
  restriction (Art. 18(1)(b)/(c): kept *instead of* erased) are skipped.
- **Consent evidence past its keeping period**: the ledger itself is append-only and is the
  Art. 7(1) proof, so it is never touched. What goes are the working copies around it: double
  opt-in confirmation rows whose token expired (``expires_at < now``; the ``confirmed`` event in
  the ledger is the proof) and ``Idempotency-Key`` answers older than ``idempotency_days``.

Safe while the server runs: keyset batches of ``batch_size`` rows, each its own short
transaction that re-checks the condition in its DELETE (a value rectified in between is newer
and stays) and writes one ``retention.deleted`` audit event per customer and attribute. Ends
with one ``retention.run`` summary event. Running it twice deletes nothing the second time.

Once the summary has committed, the deleted bytes leave the database's files
(:func:`vault.dsr.erasure.finish_on_disk`: SQLite truncates its WAL, on every run, so a second
run also finishes what a first one could not; PostgreSQL vacuums the tables it deleted from).
If SQLite cannot finish, :func:`run` raises :class:`~vault.dsr.errors.ErasureIncomplete` after
everything is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import Engine
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.consent import store as consent_store
from vault.customers import store as customers_store
from vault.db import after_commit, transaction, utcnow
from vault.dsr.erasure import finish_on_disk
from vault.policy import Policy
from vault.policy.facts import effective_retention
from vault.provenance import CLI, Caller

IDEMPOTENCY_DAYS = 30
BATCH = 1000
_VALUE_TABLES = ("customer_value", "blind_index")
_CONSENT_TABLES = ("consent_confirmation", "consent_idempotency")


@dataclass
class RetentionReport:
    now: datetime
    values_deleted: int = 0
    customers: set[UUID] = field(default_factory=set)
    by_attribute: dict[str, int] = field(default_factory=dict)
    confirmations_deleted: int = 0
    idempotency_deleted: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "values_deleted": self.values_deleted,
            "customers_affected": len(self.customers),
            "by_attribute": dict(sorted(self.by_attribute.items())),
            "confirmations_deleted": self.confirmations_deleted,
            "idempotency_deleted": self.idempotency_deleted,
        }


def _expire_attribute(
    engine: Engine,
    policy: Policy,
    attribute: str,
    cutoff: datetime,
    report: RetentionReport,
    by: Caller,
    batch_size: int,
) -> None:
    searchable = policy.attributes[attribute].searchable
    while True:
        with transaction(engine) as s:
            found, deleted = customers_store.expire_values(
                s, attribute, cutoff, searchable=searchable, limit=batch_size
            )
            if not found:
                return
            audit_record.record_many(
                session=s,
                events=[
                    {
                        "actor": by.actor,
                        "action": AuditAction.RETENTION_DELETED,
                        "customer_id": cid,
                        "attributes": [attribute],
                        "reason": "retention_expired",
                    }
                    for cid in deleted
                ],
            )
        report.values_deleted += len(deleted)
        report.customers.update(deleted)
        report.by_attribute[attribute] = report.by_attribute.get(attribute, 0) + len(deleted)
        if found < batch_size:
            return


def _purge(
    engine: Engine, purge_batch: Callable[[Session], tuple[int, int]], batch_size: int
) -> int:
    """Run ``purge_batch`` (a ``consent.store.purge_*`` batch) in its own transaction until a
    batch finds fewer than ``batch_size`` rows; the number deleted."""
    total = 0
    while True:
        with transaction(engine) as s:
            found, deleted = purge_batch(s)
        total += deleted
        if found < batch_size:
            return total


def run(
    *,
    engine: Engine,
    policy: Policy,
    now: datetime | None = None,
    by: Caller = CLI,
    batch_size: int = BATCH,
    idempotency_days: int = IDEMPOTENCY_DAYS,
) -> RetentionReport:
    """Delete what is past retention (see the module docstring). ``now`` may be moved forward
    to see what a later run would delete (and delete it)."""
    now = now or utcnow()
    report = RetentionReport(now=now)
    for attribute, (days, _rule) in effective_retention(policy).items():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        _expire_attribute(engine, policy, attribute, cutoff, report, by, batch_size)
    report.confirmations_deleted = _purge(
        engine, lambda s: consent_store.purge_confirmations(s, now, batch_size), batch_size
    )
    before = now - timedelta(days=idempotency_days)
    report.idempotency_deleted = _purge(
        engine, lambda s: consent_store.purge_idempotency(s, before, batch_size), batch_size
    )
    vacuum = (_VALUE_TABLES if report.values_deleted else ()) + (
        _CONSENT_TABLES if report.confirmations_deleted or report.idempotency_deleted else ()
    )
    with transaction(engine) as s:
        after_commit(s, partial(finish_on_disk, engine, vacuum))
        summary = report.public()
        audit_record.record(
            session=s,
            by=by,
            action=AuditAction.RETENTION_RUN,
            details={
                "as_of": summary["now"],
                "values_deleted": summary["values_deleted"],
                "customers_affected": summary["customers_affected"],
                "by_attribute": summary["by_attribute"],
                "confirmations_deleted": summary["confirmations_deleted"],
                "idempotency_deleted": summary["idempotency_deleted"],
            },
        )
    return report
