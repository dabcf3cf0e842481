"""Delivery: the mail drop, claims (two deliverers, one send), leases, retries with backoff,
bounces, give-up, and logs without addresses or links."""

from __future__ import annotations

import logging
import os
import random
import stat
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from tests.factories import create_customer
from tests.mail.helpers import LINK, drain, enqueue, mail, mails, smtp_runtime, with_settings
from vault.config import Settings
from vault.db import transaction, utcnow
from vault.events.worker import Worker
from vault.mail import delivery, drop
from vault.mail.delivery import Deliverer
from vault.mail.models import MailMessage, MailStatus


def _vault_log(caplog) -> str:
    """What the vault logged (the test SMTP server's own log quotes addresses, as servers do)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("vault"))


def _claim(runtime, worker_id: str, *, now=None, limit=100):
    with Session(runtime.engine) as s:
        jobs = delivery.claim(
            session=s,
            envelope=runtime.envelope,
            worker_id=worker_id,
            now=now or utcnow(),
            lease=timedelta(seconds=runtime.settings.mail_lease_seconds),
            limit=limit,
        )
        s.commit()
    return jobs


def test_without_smtp_the_mail_lands_in_the_private_mail_drop(session, runtime):
    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    assert drain(Deliverer(runtime)) == 1
    row = mail(runtime, mail_id)
    assert row.status == MailStatus.SENT and row.attempts == 1 and row.finished_at is not None
    path = drop.path_of(drop.drop_dir(runtime.settings), mail_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert "To: erika@example.de" in text and "Subject: Testnachricht der Consent Vault" in text
    assert LINK in text  # a newcomer can click it
    assert not list(path.parent.glob(".*.tmp"))


def test_two_deliverers_at_once_send_every_mail_exactly_once(session, runtime, smtpd):
    server = smtpd(delay=0.01)
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    ids = [enqueue(rt, c.id) for _ in range(30)]
    deliverers = [Deliverer(rt, batch_size=3, worker_id=name) for name in ("a", "b")]
    start = threading.Barrier(2)

    def run(d: Deliverer) -> None:
        start.wait()
        drain(d, rounds=100)

    threads = [threading.Thread(target=run, args=(d,)) for d in deliverers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = server.message_ids()
    assert len(got) == 30 and sorted(got) == sorted(f"<{i}@tante-emma.example>" for i in ids)
    assert all(d.stats["sent"] > 0 for d in deliverers)  # both worked, neither took a row twice
    assert sum(d.stats["sent"] for d in deliverers) == 30
    assert {m.status for m in mails(rt)} == {MailStatus.SENT}


def test_a_claim_takes_rows_no_other_deliverer_holds(session, runtime, backend):
    c = create_customer(session, runtime)
    for _ in range(6):
        enqueue(runtime, c.id)
    if backend == "postgres":
        # the first claim is not committed yet: SKIP LOCKED passes its rows by, without waiting
        with Session(runtime.engine) as first, Session(runtime.engine) as second:
            now = utcnow()
            lease = timedelta(seconds=30)
            a = delivery.claim(
                session=first,
                envelope=runtime.envelope,
                worker_id="a",
                now=now,
                lease=lease,
                limit=4,
            )
            b = delivery.claim(
                session=second,
                envelope=runtime.envelope,
                worker_id="b",
                now=now,
                lease=lease,
                limit=4,
            )
            first.commit()
            second.commit()
    else:
        a = _claim(runtime, "a", limit=4)
        b = _claim(runtime, "b", limit=4)
    assert len(a) == 4 and len(b) == 2
    assert not {j.id for j in a} & {j.id for j in b}
    assert _claim(runtime, "c") == []  # leased, not due


def test_a_dead_deliverers_lease_runs_out_and_another_sends_the_mail(session, runtime, smtpd):
    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    (job,) = _claim(rt, "dead")  # claimed, then the process died
    assert drain(Deliverer(rt, worker_id="alive")) == 0
    later = utcnow() + timedelta(seconds=rt.settings.mail_lease_seconds + 1)
    assert Deliverer(rt, worker_id="alive", clock=lambda: later).run_once() == 1
    assert server.message_ids() == [f"<{mail_id}@tante-emma.example>"]
    # the dead one comes back: its lease is gone, it records nothing
    with Session(rt.engine) as s:
        assert (
            delivery.complete(
                session=s, job=job, worker_id="dead", error=None, settings=rt.settings, now=later
            )
            is None
        )
        s.commit()
    assert mail(rt, mail_id).claimed_by is None and mail(rt, mail_id).attempts == 1


def test_a_temporary_refusal_is_retried_with_backoff_until_it_is_sent(session, runtime, smtpd):
    refusals = {"left": 2}

    def refuse(address: str) -> str | None:
        if refusals["left"]:
            refusals["left"] -= 1
            return "451 4.3.0 <erika@example.de> greylisted, try later"
        return None

    server = smtpd(refuse=refuse)
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    d = Deliverer(rt)
    assert d.run_once() == 1
    row = mail(rt, mail_id)
    assert row.status == MailStatus.RETRYING and row.attempts == 1
    assert row.last_error == "smtp_rcpt_451"  # the code, never the server's text
    wait = (row.next_attempt_at - row.last_attempt_at).total_seconds()
    assert 0.025 <= wait <= 0.05 + 0.01  # base 0.05 s, jittered to 50-100 %
    assert d.run_once() == 0  # not due yet
    deadline = time.monotonic() + 10
    while mail(rt, mail_id).status != MailStatus.SENT and time.monotonic() < deadline:
        d.run_once()
        time.sleep(0.02)
    row = mail(rt, mail_id)
    assert row.status == MailStatus.SENT and row.attempts == 3 and row.last_error is None
    assert server.message_ids() == [f"<{mail_id}@tante-emma.example>"]


def test_backoff_doubles_with_jitter_up_to_its_cap():
    s = Settings(mail_backoff_base=1, mail_backoff_max=10, _env_file=None)
    rng = random.Random(7)
    for n in range(1, 9):
        full = min(10, 2 ** (n - 1))
        assert full / 2 <= delivery.backoff(n, s, rng).total_seconds() <= full


def test_a_permanent_refusal_bounces_at_once(session, runtime, smtpd, caplog):
    server = smtpd(refuse=lambda a: "550 5.1.1 <erika@example.de>: no such user")
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    with caplog.at_level(logging.DEBUG):
        assert drain(Deliverer(rt)) == 1
    row = mail(rt, mail_id)
    assert row.status == MailStatus.BOUNCED and row.attempts == 1
    assert row.last_error == "smtp_rcpt_550" and row.finished_at is not None
    assert server.messages == []
    logged = _vault_log(caplog)
    assert "erika@example.de" not in logged and "tok-5f2b" not in logged
    assert str(mail_id) in logged and "smtp_rcpt_550" in logged


def test_an_unreachable_server_is_given_up_after_the_last_attempt(session, runtime, caplog):
    from tests.hardening.server import free_port

    rt = smtp_runtime(runtime, f"smtp://127.0.0.1:{free_port()}")  # nobody listens
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    d = Deliverer(rt)
    deadline = time.monotonic() + 10
    with caplog.at_level(logging.DEBUG):
        while mail(rt, mail_id).status != MailStatus.FAILED and time.monotonic() < deadline:
            d.run_once()
            time.sleep(0.02)
    row = mail(rt, mail_id)
    assert row.status == MailStatus.FAILED and row.attempts == rt.settings.mail_max_attempts
    assert row.last_error == "connection:ConnectionRefusedError"
    logged = _vault_log(caplog)
    assert "attempt 3 failed" in logged
    assert "erika@example.de" not in logged and "tok-5f2b" not in logged


def test_a_mail_erased_while_it_was_being_delivered_leaves_no_drop_file(session, runtime):
    from vault.dsr import erasure
    from vault.provenance import Caller

    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    d = Deliverer(runtime)
    (job,) = _claim(runtime, d.worker_id)
    assert job.message is not None  # opened before the erasure
    with transaction(runtime.engine) as s:
        erasure.erase(
            session=s, customer_id=c.id, by=Caller("cli"), notary=erasure.Notary.of(runtime)
        )
    assert d.deliver(job) is None
    assert not drop.path_of(drop.drop_dir(runtime.settings), mail_id).exists()
    assert mails(runtime) == []


def test_a_deliverer_thread_wakes_when_a_mail_is_queued(session, runtime):
    rt = with_settings(runtime, mail_poll_interval=30.0)
    c = create_customer(session, runtime)
    d = Deliverer(rt)
    d.run_once()  # the first round's retention pass
    d.start()
    try:
        mail_id = enqueue(rt, c.id)
        deadline = time.monotonic() + 5
        while mail(rt, mail_id).status != MailStatus.SENT and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mail(rt, mail_id).status == MailStatus.SENT
    finally:
        d.stop()


def test_vault_worker_sends_mail_too(session, runtime, smtpd):
    server = smtpd()
    rt = smtp_runtime(runtime, server.url())
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    with Worker(rt) as w:
        assert w.run_once() >= 1
    assert server.message_ids() == [f"<{mail_id}@tante-emma.example>"]
    assert server.envelopes == [("service@tante-emma.example", ["erika@example.de"])]


def test_finished_mails_and_their_drop_files_are_purged_after_the_retention(session, runtime):
    c = create_customer(session, runtime)
    old, fresh = enqueue(runtime, c.id), enqueue(runtime, c.id)
    drain(Deliverer(runtime))
    waiting = enqueue(runtime, c.id)  # never sent
    long_ago = utcnow() - timedelta(days=runtime.settings.mail_retention_days, minutes=1)
    with transaction(runtime.engine) as s:
        s.execute(update(MailMessage).where(MailMessage.id == old).values(finished_at=long_ago))
        s.execute(update(MailMessage).where(MailMessage.id == waiting).values(created_at=long_ago))
    directory = drop.drop_dir(runtime.settings)
    orphan, recent = directory / f"{uuid.uuid4()}.eml", directory / f"{uuid.uuid4()}.eml"
    orphan.write_text("a vault mail test of long ago")
    recent.write_text("a vault mail test of today")
    os.utime(orphan, (long_ago.timestamp(), long_ago.timestamp()))
    assert Deliverer(runtime).purge() == 2  # the old row (and its file), the old orphan file
    assert {m.id for m in mails(runtime)} == {fresh, waiting}
    assert not drop.path_of(directory, old).exists() and not orphan.exists()
    assert drop.path_of(directory, fresh).exists() and recent.exists()


def test_a_mail_that_does_not_open_is_given_up_not_sent(session, runtime):
    """A ciphertext moved to another row (an insider's edit) fails its associated data."""
    c = create_customer(session, runtime)
    first, second = enqueue(runtime, c.id), enqueue(runtime, c.id, note=None)
    moved = mail(runtime, first).message_ciphertext
    with transaction(runtime.engine) as s:
        s.execute(
            update(MailMessage).where(MailMessage.id == second).values(message_ciphertext=moved)
        )
    drain(Deliverer(runtime))
    row = mail(runtime, second)
    assert row.status == MailStatus.FAILED and row.last_error == "unreadable"
    assert not drop.path_of(drop.drop_dir(runtime.settings), second).exists()
    assert mail(runtime, first).status == MailStatus.SENT
