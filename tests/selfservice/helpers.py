"""Shared steps of the self-service tests."""

from __future__ import annotations

import re
from uuid import UUID

from fastapi.testclient import TestClient
from sqlmodel import Session

from tests import factories
from vault.runtime import Runtime

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def issue_link(client: TestClient, session: Session, runtime: Runtime, customer_id: UUID) -> str:
    """A fresh magic link (path only) through the API, as an internal app gets it."""
    headers = factories.auth_headers(session, runtime, "selfservice:issue")
    r = client.post(f"/v1/customers/{customer_id}/selfservice-link", headers=headers)
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    base = runtime.settings.public_url.rstrip("/")
    assert url.startswith(base + "/me/login/")
    return url[len(base) :]


def sign_in(
    client: TestClient,
    session: Session,
    runtime: Runtime,
    customer_id: UUID,
    headers: dict[str, str] | None = None,
) -> None:
    path = issue_link(client, session, runtime, customer_id)
    r = client.get(path, headers=headers or {}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/me"


def csrf(client: TestClient, path: str = "/me/consents") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    m = _CSRF.search(r.text)
    assert m is not None
    return m.group(1)
