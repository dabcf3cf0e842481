"""Plain factory functions for tests (no magic)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session

from vault.auth import service as auth_service
from vault.auth.models import Client
from vault.customers import service as customers_service
from vault.customers.models import Customer
from vault.provenance import Caller
from vault.runtime import Runtime


def create_client(
    session: Session,
    runtime: Runtime,
    *,
    scopes: Iterable[str],
    purposes: Iterable[str] = (),
    name: str = "test app",
) -> tuple[Client, str]:
    client, secret = auth_service.create_client(
        session=session,
        policy=runtime.policy,
        name=name,
        scopes=list(scopes),
        purposes=list(purposes),
    )
    session.commit()
    return client, secret


def token(runtime: Runtime, client: Client, scope: str | None = None) -> str:
    tok, _ = auth_service.issue_access_token(
        client=client, signer=runtime.signer, settings=runtime.settings, requested_scope=scope
    )
    return tok


def auth_headers(
    session: Session, runtime: Runtime, *scopes: str, purposes: Iterable[str] = ()
) -> dict[str, str]:
    """A new client with these scopes and purposes, and a bearer header for it."""
    client, _ = create_client(session, runtime, scopes=scopes, purposes=purposes)
    return {"Authorization": f"Bearer {token(runtime, client)}"}


def unique_email(prefix: str = "kunde") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.de"


def create_customer(
    session: Session, runtime: Runtime, *, external_id: str | None = None, **attributes: Any
) -> Customer:
    attributes.setdefault("email", unique_email())
    attributes.setdefault("first_name", "Erika")
    attributes.setdefault("last_name", "Mustermann")
    customer, _ = customers_service.create_customer(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attributes=attributes,
        external_id=external_id,
    )
    session.commit()
    return customer


def record_consent(
    session: Session,
    runtime: Runtime,
    customer_id: uuid.UUID,
    purpose: str,
    status: str = "granted",
    **kwargs: Any,
):
    """Record one consent statement through the service and commit it."""
    from vault.consent import service as consent_service

    kwargs.setdefault("channel", "web")
    kwargs.setdefault("by", Caller("client:test"))
    # tests arrange histories at any time; the backdating horizon has its own tests
    kwargs.setdefault("late_import", True)
    # a double opt-in grant mails its confirmation link (token_to_caller=True: the token back)
    kwargs.setdefault("envelope", runtime.envelope)
    result = consent_service.record_event(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        customer_id=customer_id,
        purpose=purpose,
        status=status,
        **kwargs,
    )
    session.commit()
    return result


def asgi_scope(
    method: str,
    path: str,
    headers: Iterable[tuple[bytes, bytes]],
    query: bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> dict[str, Any]:
    """The scope of one HTTP request for driving an ASGI app directly (tests that must see every
    ``receive()`` the app makes, or call it without a server)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": list(headers),
        "client": client,
        "server": ("testserver", 80),
    }
