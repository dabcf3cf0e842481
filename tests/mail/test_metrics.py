"""Bounced and failed mails show in ``/metrics`` (counted in the database at scrape time)."""

from __future__ import annotations

import re

from tests.factories import create_customer
from tests.hardening.server import free_port
from tests.mail.helpers import drain, enqueue, smtp_runtime
from vault.mail.delivery import Deliverer


def _gauge(text: str, name: str, state: str | None = None) -> float:
    label = f'{{state="{state}"}}' if state else ""
    match = re.search(rf"^{name}{re.escape(label)} (\S+)$", text, re.M)
    assert match, f"{name}{label} missing"
    return float(match.group(1))


def test_metrics_count_mails_by_state(session, runtime, client, smtpd):
    text = client.get("/metrics").text
    for state in ("pending", "retrying", "sent", "bounced", "failed"):
        assert _gauge(text, "vault_mail_messages", state) == 0
    assert _gauge(text, "vault_mail_oldest_unsent_seconds") == 0

    c = create_customer(session, runtime)
    server = smtpd(refuse=lambda a: "550 5.1.1 no such user" if a.startswith("gone") else None)
    rt = smtp_runtime(runtime, server.url())
    enqueue(rt, c.id, to="gone@example.de")
    enqueue(rt, c.id, to="erika@example.de")
    drain(Deliverer(rt))
    # nobody listens here: three attempts (FAST), then given up
    down = smtp_runtime(runtime, f"smtp://127.0.0.1:{free_port()}")
    enqueue(down, c.id)
    d = Deliverer(down)
    for _ in range(200):
        if not _gauge(client.get("/metrics").text, "vault_mail_messages", "retrying") and (
            _gauge(client.get("/metrics").text, "vault_mail_messages", "failed")
        ):
            break
        d.run_once()
    enqueue(rt, c.id)  # waiting

    text = client.get("/metrics").text
    assert _gauge(text, "vault_mail_messages", "bounced") == 1
    assert _gauge(text, "vault_mail_messages", "failed") == 1
    assert _gauge(text, "vault_mail_messages", "sent") == 1
    assert _gauge(text, "vault_mail_messages", "pending") == 1
    assert _gauge(text, "vault_mail_oldest_unsent_seconds") >= 0
    assert "erika@example.de" not in text and "gone@" not in text
    assert "vault_webhook_deliveries" in text  # the webhook metrics are still there
