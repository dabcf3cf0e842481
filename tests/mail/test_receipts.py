"""Receipts: what left the vault (Message-ID, template version, SHA-256 of the exact bytes the
server accepted, when), kept after the mail's purge and the customer's erasure, no contact data."""

from __future__ import annotations

import hashlib
import shutil

from sqlmodel import Session

from tests.factories import create_customer
from tests.mail.helpers import drain, enqueue, smtp_runtime
from vault.mail import drop, receipts
from vault.mail.delivery import Deliverer
from vault.mail.models import MailReceipt
from vault.mail.render import template_version


def _receipt(runtime, mail_id) -> MailReceipt | None:
    with Session(runtime.engine) as s:
        return receipts.for_mails(s, [mail_id]).get(mail_id)


def test_an_smtp_receipt_hashes_the_bytes_the_server_received(session, runtime, smtpd):
    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    assert _receipt(rt, mail_id) is None  # not sent yet: no receipt
    assert drain(Deliverer(rt)) == 1
    r = _receipt(rt, mail_id)
    assert r is not None and r.transport == "smtp" and r.customer_id == c.id
    (raw,) = server.raw
    assert r.sha256 == hashlib.sha256(raw).hexdigest()
    assert r.message_id == str(server.messages[0]["Message-ID"])
    assert r.template == "test_message" and r.template_version == template_version(
        "test_message", "de"
    )
    row = repr(r.model_dump()).lower()
    assert "erika" not in row and "@example.de" not in row  # no contact data in a receipt


def test_a_drop_receipt_hashes_the_drop_file(session, runtime):
    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    assert drain(Deliverer(runtime)) == 1
    r = _receipt(runtime, mail_id)
    assert r is not None and r.transport == "drop"
    data = drop.path_of(runtime.settings.data_dir / "mail", mail_id).read_bytes()
    assert r.sha256 == hashlib.sha256(data).hexdigest()


def test_a_failed_send_leaves_no_receipt(session, runtime, smtpd):
    server = smtpd(refuse=lambda addr: "550 no such user")
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    drain(Deliverer(rt))
    assert _receipt(rt, mail_id) is None


def test_the_template_version_changes_with_the_wording(tmp_path, monkeypatch):
    """A template's version covers its files and the catalogue entries it uses, in that
    language: another German sentence changes the German version only; an entry the template
    does not use changes nothing."""
    from vault import l10n
    from vault.mail import render

    def forget() -> None:
        for cached in (template_version, render._environment, l10n.catalogue):
            cached.cache_clear()

    before = {lang: template_version("test_message", lang) for lang in ("de", "en")}
    shutil.copytree(render.LOCALE_DIR, tmp_path / "locale")
    po = tmp_path / "locale" / "de" / "LC_MESSAGES" / "messages.po"
    text = po.read_text(encoding="utf-8")
    assert '"Testnachricht der Consent Vault"' in text
    monkeypatch.setattr(render, "LOCALE_DIR", tmp_path / "locale")
    forget()
    try:
        po.write_text(text.replace('"Meine Daten öffnen"', '"Meine Daten ansehen"'), "utf-8")
        assert template_version("test_message", "de") == before["de"]
        forget()
        po.write_text(text.replace('"Testnachricht der Consent Vault"', '"Testmail"'), "utf-8")
        assert template_version("test_message", "de") != before["de"]
        assert template_version("test_message", "en") == before["en"]
        assert render.render("test_message", "de", {"note": None}).subject == "Testmail"
    finally:
        forget()
