"""The outbox: written in the caller's transaction, sealed under the customer's key, refused for
an erased customer, and with only the headers a caller may set."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session

from tests.factories import create_customer
from tests.mail.helpers import LINK, enqueue, mail, mails
from vault.crypto.envelope import DataKey
from vault.db import reader, sqlite_files
from vault.errors import CustomerErased, CustomerNotFound, DecryptionError
from vault.mail import outbox
from vault.mail.models import MailStatus
from vault.mail.render import UnknownTemplate


def _enqueue(s, runtime, customer_id, **kwargs):
    kwargs.setdefault("to", "erika@example.de")
    kwargs.setdefault("template", "test_message")
    kwargs.setdefault("language", "de")
    kwargs.setdefault("context", {"note": LINK})
    return outbox.enqueue(s, envelope=runtime.envelope, customer_id=customer_id, **kwargs)


def test_a_mail_is_queued_only_if_the_transaction_commits(session, runtime):
    c = create_customer(session, runtime)
    with Session(runtime.engine) as s:
        _enqueue(s, runtime, c.id)
        s.rollback()
    assert mails(runtime) == []
    mail_id = enqueue(runtime, c.id)
    (row,) = mails(runtime)
    assert row.id == mail_id and row.status == MailStatus.PENDING and row.attempts == 0
    assert row.customer_id == c.id and row.template == "test_message" and row.language == "de"


def test_recipient_subject_and_body_are_sealed_under_the_customers_key(session, runtime, backend):
    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id, to="geheim.adresse@example.de")
    row = mail(runtime, mail_id)
    assert b"geheim" not in row.message_ciphertext and LINK.encode() not in row.message_ciphertext
    with Session(reader(runtime.engine)) as s:
        message = outbox.open_message(s, runtime.envelope, row)
    assert message.to == "geheim.adresse@example.de"
    assert LINK in message.text and LINK in message.html
    assert message.subject == "Testnachricht der Consent Vault"
    assert "geheim" not in repr(message) and LINK not in repr(message)
    # bound to its row: the same bytes under another mail id do not open
    with Session(reader(runtime.engine)) as s:
        from vault.customers import service as customers_service

        key: DataKey = customers_service.data_key(runtime.envelope, s.get(type(c), c.id))
    with pytest.raises(DecryptionError):
        key.decrypt(f"mail/{uuid.uuid4()}", row.message_ciphertext)
    if backend == "sqlite":
        runtime.engine.dispose()
        raw = b"".join(
            p.read_bytes() for p in sqlite_files(runtime.settings.database_url) if p.exists()
        )
        assert b"geheim.adresse" not in raw and b"tok-5f2b9c0e7d1a4e3b" not in raw


def test_an_erased_or_unknown_customer_gets_no_mail(session, runtime):
    from vault.dsr import erasure
    from vault.provenance import Caller

    c = create_customer(session, runtime)
    with Session(runtime.engine) as s:
        erasure.erase(
            session=s, customer_id=c.id, by=Caller("cli"), notary=erasure.Notary.of(runtime)
        )
        s.commit()
    with Session(runtime.engine) as s, pytest.raises(CustomerErased):
        _enqueue(s, runtime, c.id)
    with Session(runtime.engine) as s, pytest.raises(CustomerNotFound):
        _enqueue(s, runtime, uuid.uuid4())
    assert mails(runtime) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "two@example.de, three@example.de"},
        {"to": "victim@example.de\r\nBcc: many@example.de"},
        {"to": "not an address"},
        {"headers": {"Bcc": "someone@example.de"}},
        {"headers": {"From": "ceo@example.de"}},
        {"headers": {"List-Unsubscribe": "<https://x/u>\r\nBcc: a@b.de"}},
    ],
)
def test_one_recipient_and_only_the_list_headers(session, runtime, kwargs):
    c = create_customer(session, runtime)
    with Session(runtime.engine) as s, pytest.raises(ValueError):
        _enqueue(s, runtime, c.id, **kwargs)


def test_unknown_template_and_missing_context_fail_the_enqueue(session, runtime):
    c = create_customer(session, runtime)
    with Session(runtime.engine) as s, pytest.raises(UnknownTemplate):
        _enqueue(s, runtime, c.id, template="advertising")
    with Session(runtime.engine) as s, pytest.raises(UnknownTemplate):
        _enqueue(s, runtime, c.id, template="../base")
    from jinja2 import UndefinedError

    with Session(runtime.engine) as s, pytest.raises(UndefinedError):
        _enqueue(s, runtime, c.id, context={})


def test_a_language_without_templates_falls_back_to_german_and_list_headers_go_along(
    session, runtime
):
    c = create_customer(session, runtime)
    with Session(runtime.engine) as s:
        mail_id = _enqueue(
            s,
            runtime,
            c.id,
            language="fr",
            headers={
                "List-Unsubscribe": "<https://x/u/abc>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        s.commit()
    row = mail(runtime, mail_id)
    assert row.language == "de"
    with Session(reader(runtime.engine)) as s:
        composed = outbox.compose(outbox.open_message(s, runtime.envelope, row), runtime.settings)
    assert composed["List-Unsubscribe"] == "<https://x/u/abc>"
    assert composed["From"] == "Tante Emma Online <service@tante-emma.example>"
    assert composed["Message-ID"] == f"<{mail_id}@tante-emma.example>"
    assert composed["Auto-Submitted"] == "auto-generated"
    assert composed["Reply-To"] is None
    parts = [p.get_content_type() for p in composed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
