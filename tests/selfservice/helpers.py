"""Shared steps of the self-service tests."""

from __future__ import annotations

import re
from uuid import UUID

from fastapi.testclient import TestClient
from sqlmodel import Session

from tests import factories
from vault.db import reader
from vault.mail import outbox
from vault.mail.models import MailMessage
from vault.runtime import Runtime

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
LINK_IN_MAIL = re.compile(r"(https?://\S+/me/login/[A-Za-z0-9_-]+)")


def link_in_text(runtime: Runtime, text: str) -> str:
    """The one magic link (path only) in a mail's text."""
    found = set(LINK_IN_MAIL.findall(text))
    assert len(found) == 1, text
    url = found.pop()
    base = runtime.settings.public_url.rstrip("/")
    assert url.startswith(base + "/me/login/")
    return url[len(base) :]


def mailed_link(runtime: Runtime, mail_id: UUID | str) -> str:
    """The magic link (path only) in a queued mail, read from the outbox as the deliverer
    would (the tests of delivery itself use the real SMTP server)."""
    with Session(reader(runtime.engine)) as s:
        row = s.get(MailMessage, UUID(str(mail_id)))
        assert row is not None and row.template == "selfservice_link"
        message = outbox.open_message(s, runtime.envelope, row)
        s.rollback()
    return link_in_text(runtime, message.text)


def issue_link(client: TestClient, session: Session, runtime: Runtime, customer_id: UUID) -> str:
    """A fresh magic link (path only) through the API, as the customer gets it: the app sees
    202 and a mail id; the link is in the mail."""
    headers = factories.auth_headers(session, runtime, "selfservice:issue")
    r = client.post(f"/v1/customers/{customer_id}/selfservice-link", headers=headers)
    assert r.status_code == 202, r.text
    assert "/me/login/" not in r.text
    return mailed_link(runtime, r.json()["mail_id"])


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
