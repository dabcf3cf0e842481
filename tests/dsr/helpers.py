"""Helpers for DSR tests."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlmodel import Session

from tests.factories import auth_headers, create_customer
from vault.audit.models import AuditEvent
from vault.events.models import OutboxEvent

PERSONAL = {
    "email": "Erika.Mustermann@Example.de",
    "first_name": "Erika",
    "last_name": "Mustermann",
    "birth_date": "1984-05-17",
    "postal_code": "10115",
    "phone": "+49 30 1234567",
    "street": "Musterweg 12",
    "dietary_restrictions": "Laktoseintoleranz",
}


def customer_with_data(session, runtime, **overrides):
    return create_customer(session, runtime, **{**PERSONAL, **overrides})


def dsr(session, runtime):
    return auth_headers(session, runtime, "dsr:execute")


def reader(session, runtime, *purposes):
    return auth_headers(session, runtime, "data:read", purposes=purposes)


def read(client, headers, customer_id, purpose):
    return client.get(
        f"/v1/customers/{customer_id}/data", params={"purpose": purpose}, headers=headers
    )


def audit_actions(runtime, customer_id: UUID) -> list[str]:
    with Session(runtime.engine) as s:
        return list(
            s.execute(
                select(AuditEvent.action)
                .where(AuditEvent.customer_id == customer_id)
                .order_by(AuditEvent.id)
            ).scalars()
        )


def outbox(runtime, customer_id: UUID) -> list[OutboxEvent]:
    """The customer's ``customer.*`` outbox events (consent writes emit ``consent.*`` ones)."""
    with Session(runtime.engine) as s:
        return list(
            s.execute(
                select(OutboxEvent)
                .where(
                    OutboxEvent.customer_id == customer_id,
                    OutboxEvent.type.startswith("customer."),
                )
                .order_by(OutboxEvent.seq)
            ).scalars()
        )
