"""Customer profiles: validate, normalise, encrypt, index. Services never commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.crypto.envelope import DataKey, Envelope
from vault.customers import store as customers_store
from vault.customers.models import BlindIndex, Customer, CustomerStatus, CustomerValue
from vault.db import utcnow
from vault.errors import (
    Conflict,
    CustomerErased,
    CustomerNotFound,
    InvalidRequest,
    UnknownAttribute,
)
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.policy import Policy
from vault.policy.errors import InvalidCharacters
from vault.policy.values import Value, has_invisible, index_form, normalise
from vault.provenance import SYSTEM, Caller

EXTERNAL_ID = "external_id"
MAX_ATTRIBUTES_PER_REQUEST = 200


def _normalise_all(policy: Policy, attributes: Mapping[str, Any], *, allow_null: bool) -> dict:
    if len(attributes) > MAX_ATTRIBUTES_PER_REQUEST:
        raise InvalidRequest("Too many attributes in one request.", code="too_many_attributes")
    out: dict[str, Value | None] = {}
    for name, raw in attributes.items():
        attr = policy.attributes.get(name)
        if attr is None:
            raise UnknownAttribute()  # the name is client input: never echoed
        if raw is None:
            if not allow_null:
                raise InvalidRequest(
                    f"Attribute '{name}': null is only allowed when rectifying.",
                    code="invalid_attribute_value",
                    attribute=name,
                )
            out[name] = None
        else:
            out[name] = normalise(attr, raw)
    return out


def clean_external_id(raw: str) -> str:
    """The external id as indexed: stripped, and refused (422) with the characters no text
    value may hold (invisible ones would make two ids that look alike; a lone surrogate cannot
    be encoded for the blind index)."""
    if has_invisible(raw):
        raise InvalidCharacters(
            "external_id contains control or invisible formatting characters.",
            attribute=EXTERNAL_ID,
        )
    return raw.strip()


def _index_rows(
    envelope: Envelope, policy: Policy, customer_id: UUID, values: Mapping[str, Value | None]
) -> tuple[list[dict], list[str]]:
    """Blind-index rows to write, and searchable attributes whose index must go."""
    rows: list[dict] = []
    removed: list[str] = []
    for name, value in values.items():
        if name != EXTERNAL_ID and not policy.attributes[name].searchable:
            continue
        if value is None:
            removed.append(name)
        else:
            digest = envelope.blind_index(name, index_form(value))
            rows.append({"attribute": name, "digest": digest, "customer_id": customer_id})
    return rows, removed


def _ensure_unique(session: Session, rows: list[dict], customer_id: UUID | None) -> None:
    if not rows:
        return
    # Digests already include the attribute name, so the digest alone identifies the row.
    taken = session.execute(
        select(BlindIndex.attribute, BlindIndex.customer_id).where(
            BlindIndex.digest.in_([r["digest"] for r in rows])
        )
    ).all()
    wanted = {r["attribute"] for r in rows}
    for attribute, owner in taken:
        if owner != customer_id and attribute in wanted:
            raise Conflict(
                f"Another customer already has this {attribute}.",
                code="duplicate_value",
                attribute=attribute,
            )


def _insert(session: Session, values: list[dict], index_rows: list[dict]) -> None:
    try:
        if values:
            session.execute(insert(CustomerValue), values)
        if index_rows:
            session.execute(insert(BlindIndex), index_rows)
    except IntegrityError:
        # A concurrent request took the same searchable value between our check and our write.
        raise Conflict(
            "Another customer already has one of these values.", code="duplicate_value"
        ) from None


def _encode(value: Value) -> bytes:
    return orjson.dumps(value)


def get_customer(session: Session, customer_id: UUID, *, allow_erased: bool = False) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound()
    if customer.status == CustomerStatus.ERASED and not allow_erased:
        raise CustomerErased()
    return customer


def lock_customer(session: Session, customer_id: UUID) -> Customer:
    """The customer for writing (404 unknown, 410 erased), its row locked until commit on
    PostgreSQL: :func:`vault.customers.store.lock_customer`, then the row as committed."""
    customers_store.lock_customer(session, customer_id)
    return session.execute(
        select(Customer).where(Customer.id == customer_id).execution_options(populate_existing=True)
    ).scalar_one()


def save(session: Session, customer: Customer, now: datetime) -> None:
    """Write a customer row changed by its rights (status, objections, legal hold: vault.dsr
    sets them on the row from :func:`lock_customer`), stamped ``updated_at``."""
    customer.updated_at = now
    session.add(customer)
    session.flush()


def data_key(envelope: Envelope, customer: Customer) -> DataKey:
    if customer.dek_wrapped is None or customer.kek_id is None:
        raise CustomerErased()
    return envelope.unwrap(customer.id, customer.dek_wrapped, customer.kek_id)


def create_customer(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    attributes: Mapping[str, Any],
    external_id: str | None = None,
    by: Caller = SYSTEM,
) -> tuple[Customer, list[str]]:
    values: dict[str, Value | None] = _normalise_all(policy, attributes, allow_null=False)
    customer = Customer()
    key, wrapped, kek_id = envelope.new_data_key(customer.id)
    customer.dek_wrapped, customer.kek_id = wrapped, kek_id
    indexed = dict(values)
    if external_id is not None:
        indexed[EXTERNAL_ID] = clean_external_id(external_id)
    index_rows, _ = _index_rows(envelope, policy, customer.id, indexed)
    _ensure_unique(session, index_rows, None)
    session.add(customer)
    session.flush()  # the customer row first: values and index rows reference it
    now = customer.created_at
    rows = [
        {
            "customer_id": customer.id,
            "attribute": name,
            "ciphertext": key.encrypt(name, _encode(v)),
            "updated_at": now,
        }
        for name, v in values.items()
        if v is not None
    ]
    _insert(session, rows, index_rows)
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.CUSTOMER_CREATED,
        customer_id=customer.id,
        attributes=sorted(values),
        now=now,
    )
    return customer, sorted(values)


def rectify(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    attributes: Mapping[str, Any],
    by: Caller = SYSTEM,
) -> tuple[Customer, list[str]]:
    """Set the given attributes; ``None`` removes one (Art. 16). Returns the stored names."""
    customer = lock_customer(session, customer_id)
    values = _normalise_all(policy, attributes, allow_null=True)
    key = data_key(envelope, customer)
    index_rows, removed = _index_rows(envelope, policy, customer.id, values)
    _ensure_unique(session, index_rows, customer.id)
    now = utcnow()
    names = list(values)
    if names:
        session.execute(
            delete(CustomerValue).where(
                CustomerValue.customer_id == customer.id, CustomerValue.attribute.in_(names)
            )
        )
    changed_index = removed + [r["attribute"] for r in index_rows]
    if changed_index:
        session.execute(
            delete(BlindIndex).where(
                BlindIndex.customer_id == customer.id, BlindIndex.attribute.in_(changed_index)
            )
        )
    rows = [
        {
            "customer_id": customer.id,
            "attribute": name,
            "ciphertext": key.encrypt(name, _encode(v)),
            "updated_at": now,
        }
        for name, v in values.items()
        if v is not None
    ]
    _insert(session, rows, index_rows)
    customer.updated_at = now
    session.add(customer)
    session.flush()
    removed_names = sorted(n for n, v in values.items() if v is None)
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.CUSTOMER_RECTIFIED,
        customer_id=customer.id,
        attributes=sorted(values),
        details={"removed": removed_names} if removed_names else None,
        now=now,
    )
    if values:
        # vault.events: downstream tools re-read through the access API (names, never values)
        events_outbox.emit(
            session=session,
            type=EventType.CUSTOMER_UPDATED,
            customer_id=customer.id,
            data={"attributes": sorted(values), "updated_at": now},
            now=now,
        )
    return customer, stored_attribute_names(session, customer.id)


def stored_attribute_names(session: Session, customer_id: UUID) -> list[str]:
    return sorted(
        session.execute(
            select(CustomerValue.attribute).where(CustomerValue.customer_id == customer_id)
        ).scalars()
    )


def lookup(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    attribute: str,
    value: str,
    by: Caller = SYSTEM,
) -> UUID:
    """Find a customer by a searchable attribute or the external id, through the blind index."""
    if attribute == EXTERNAL_ID:
        normalised: Value = clean_external_id(value)
    else:
        attr = policy.attributes.get(attribute)
        if attr is None or not attr.searchable:
            raise InvalidRequest(  # the name asked for is client input: not echoed
                "The attribute is not a searchable one. Searchable: "
                + ", ".join(
                    [
                        EXTERNAL_ID,
                        *sorted(a.name for a in policy.attributes.values() if a.searchable),
                    ]
                )
                + ".",
                code="attribute_not_searchable",
            )
        normalised = normalise(attr, value)
    digest = envelope.blind_index(attribute, index_form(normalised))
    row = session.get(BlindIndex, (attribute, digest))
    if row is None:
        raise CustomerNotFound("No customer matches.")
    get_customer(session, row.customer_id)
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.CUSTOMER_LOOKUP,
        customer_id=row.customer_id,
        attributes=[attribute],
    )
    return row.customer_id


def find(*, session: Session, envelope: Envelope, attribute: str, value: Value) -> UUID | None:
    """The customer holding an already normalised searchable ``value``, or None: one keyed
    hash and one primary-key read whether or not there is one, no audit event (the caller
    records what it does with the answer; the /me link form must take as long either way)."""
    digest = envelope.blind_index(attribute, index_form(value))
    row = session.get(BlindIndex, (attribute, digest))
    return row.customer_id if row is not None else None


def decrypt_values(
    *,
    session: Session,
    envelope: Envelope,
    customer: Customer,
    names: Iterable[str] | None = None,
) -> dict[str, Value]:
    """Decrypt the customer's stored values (optionally only ``names``). Any moved or altered
    ciphertext raises DecryptionError; nothing undecryptable is ever returned."""
    key = data_key(envelope, customer)
    stmt = select(CustomerValue.attribute, CustomerValue.ciphertext).where(
        CustomerValue.customer_id == customer.id
    )
    if names is not None:
        stmt = stmt.where(CustomerValue.attribute.in_(list(names)))
    return {
        attribute: orjson.loads(key.decrypt(attribute, blob))
        for attribute, blob in session.execute(stmt).all()
    }


def rewrap_batch(
    *, session: Session, envelope: Envelope, after: UUID | None = None, batch_size: int = 1000
) -> tuple[int, UUID | None]:
    """Re-wrap the DEKs not yet under the primary KEK among the next ``batch_size`` customers
    after ``after`` (in id order). Returns (how many were re-wrapped, the last id looked at, or
    None at the end). A run walks the table once; an interrupted run can simply start again."""
    primary = envelope.primary_kek_id
    stmt = (
        select(Customer.id, Customer.dek_wrapped, Customer.kek_id)
        .where(Customer.dek_wrapped.is_not(None))
        .order_by(Customer.id)
        .limit(batch_size)
    )
    if after is not None:
        stmt = stmt.where(Customer.id > after)
    rows = session.execute(stmt).all()
    params = []
    for cid, wrapped, kek_id in rows:
        if kek_id == primary:
            continue
        new_wrapped, new_kek = envelope.rewrap(cid, wrapped, kek_id)
        params.append((new_wrapped, new_kek, cid, kek_id))
    customers_store.rewrap(session, params)
    last = rows[-1][0] if len(rows) == batch_size else None
    return len(params), last


def deks_under(*, session: Session, kek_id: str) -> int:
    """How many customers' DEKs are still wrapped under ``kek_id`` (``vault keys retire``
    refuses while any is)."""
    return customers_store.count_wrapped_under(session, kek_id)
