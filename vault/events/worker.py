"""``vault worker``: sends the outbox to the webhooks, signed per Standard Webhooks.

One round: (every ``worker_expiry_sweep_interval``) emit ``consent.expired`` for grants that ran
out; (with ``VAULT_KEY_EPOCH_DAYS``, every minute) the key epoch job, see
:meth:`Worker.run_key_epoch`; dispatch new outbox rows; claim a batch of due deliveries (see
:mod:`vault.events.queue`); send them concurrently, each recording its own outcome in its own
short transaction. A round that found nothing sleeps ``worker_poll_interval``.

Each request is a ``POST`` of the JSON payload ``{"type", "timestamp", "data"}`` with the
headers ``webhook-id`` (the event id: the same for every retry, so receivers can de-duplicate),
``webhook-timestamp`` and ``webhook-signature`` made by the ``standardwebhooks`` library.

The worker also sends the mail outbox (:class:`vault.mail.delivery.Deliverer`): in a thread of
its own under :meth:`Worker.run`, so a slow SMTP server never holds up webhooks; inline in
:meth:`Worker.run_once` (``vault worker --once``, tests). Before
every request the URL is checked again against SSRF rules and the connection goes to the
address that was checked (TLS still verifies the host name); redirects are not followed.
Only a 2xx answer counts as delivered. Secrets, payloads and URLs are never logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlmodel import Session
from standardwebhooks.webhooks import Webhook as Signer

from vault.consent import expiry
from vault.crypto.keys import KeyConfigError, retire_kek, rotate_kek, stamp_primary_created
from vault.crypto.pkcs11 import TokenError
from vault.customers import service as customers_service
from vault.db import transaction, try_advisory_lock, utcnow
from vault.errors import VaultError
from vault.events import queue, webhooks
from vault.events.secrets import decrypt_secret
from vault.events.urls import Allowlist, Resolver, check_url
from vault.mail import delivery as mail_delivery
from vault.runtime import Runtime
from vault.staff import accounts as staff_accounts

log = logging.getLogger("vault.events.worker")

USER_AGENT = "consent-vault-webhooks/1"
# the key epoch job: one worker at a time (PostgreSQL advisory lock; SQLite has one writer)
EPOCH_LOCK = 0x6B657973
# servers pick up a rotated KEK within 5 s (vault.crypto.envelope): the rewrap and retire wait
# well past that, so no server still wraps a new customer's key under the KEK being retired
EPOCH_GRACE = timedelta(minutes=1)
EPOCH_CHECK_EVERY = 60.0


def payload(job: queue.Job) -> bytes:
    """The body of every delivery of one event (identical across retries)."""
    return orjson.dumps(
        {
            "type": job.type,
            "timestamp": job.occurred_at.isoformat(),
            "data": job.data,
        }
    )


def sign(
    *,
    runtime: Runtime,
    job: queue.Job,
    body: bytes,
    now: datetime,
) -> str:
    """The ``webhook-signature`` header: ``v1,<sig>`` under the current secret, plus one under
    the previous secret while its grace period after a rotation lasts."""
    blobs = [job.secret_ciphertext]
    if job.previous_secret_ciphertext is not None and (
        job.previous_secret_until is not None and job.previous_secret_until > now
    ):
        blobs.append(job.previous_secret_ciphertext)
    text = body.decode()
    return " ".join(
        Signer(decrypt_secret(runtime.envelope, job.webhook_id, blob)).sign(
            msg_id=str(job.event_id), timestamp=now, data=text
        )
        for blob in blobs
    )


class Worker:
    """Delivers webhooks until :meth:`stop`. Safe to run in several processes at once."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 8,
        batch_size: int = 64,
        worker_id: str | None = None,
        resolve: Resolver = socket.getaddrinfo,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.runtime = runtime
        self.settings = runtime.settings
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.worker_id = worker_id or f"{socket.gethostname()[:40]}-{os.getpid()}-" + (
            secrets.token_hex(4)
        )
        self.resolve = resolve
        self.clock = clock
        self.allow = Allowlist.of(self.settings)
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self.stats = {"delivered": 0, "failed": 0, "dead": 0}
        self._next_sweep = 0.0
        self._next_epoch = 0.0
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook")
        # One client (connection pool) per host name: connections go to checked IP addresses,
        # and a TLS connection verified for one name must never carry a request for another
        # name that happens to resolve to the same address.
        self._clients: dict[str, httpx.Client] = {}
        self._clients_lock = threading.Lock()
        self.mail = mail_delivery.Deliverer(runtime, worker_id=f"{self.worker_id}-mail"[:64])

    # --- lifecycle ---

    def stop(self) -> None:
        self._stop.set()
        self.mail.stop(wait=False)  # may run in a signal handler; run() waits for it

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def _client(self, host: str) -> httpx.Client:
        with self._clients_lock:
            client = self._clients.get(host)
            if client is None:
                client = self._clients[host] = httpx.Client(
                    timeout=self.settings.webhook_timeout,
                    follow_redirects=False,
                    trust_env=False,  # no proxy from the environment: we connect to what we checked
                    limits=httpx.Limits(max_connections=self.concurrency),
                    headers={"user-agent": USER_AGENT},
                )
            return client

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, *, max_rounds: int | None = None) -> None:
        # Mail on its own thread when running for good; rounds counted (--once) send inline.
        threaded = max_rounds is None
        if threaded:
            self.mail.start()
        try:
            self._run(max_rounds=max_rounds, mail=not threaded)
        finally:
            if threaded:
                self.mail.stop()

    def _run(self, *, max_rounds: int | None, mail: bool) -> None:
        rounds = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once(mail=mail)
            except Exception as exc:  # a database hiccup must not end the worker
                log.error("worker round failed: %s", type(exc).__name__)
                busy = 0
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                return
            if not busy:
                self._stop.wait(self.settings.worker_poll_interval)

    # --- one round ---

    def _transaction(self, fn: Callable[[Session], Any]) -> Any:
        with transaction(self.runtime.engine) as session:
            return fn(session)

    def run_once(self, *, mail: bool = True) -> int:
        """Sweep (when due), dispatch and deliver one batch of webhooks (and, with ``mail``,
        one batch of mails); returns the work done."""
        done = self.mail.run_once() if mail else 0
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.settings.worker_expiry_sweep_interval
            done += self._transaction(
                lambda s: expiry.sweep_expired(
                    session=s, policy=self.runtime.policy, now=self.clock()
                )
            )
        if self.settings.key_epoch_days and time.monotonic() >= self._next_epoch:
            self._next_epoch = time.monotonic() + EPOCH_CHECK_EVERY
            done += self.run_key_epoch()
        done += self._transaction(lambda s: queue.dispatch(session=s, now=self.clock()))
        jobs = self._transaction(
            lambda s: queue.claim(
                session=s,
                worker_id=self.worker_id,
                now=self.clock(),
                lease=timedelta(seconds=self.settings.webhook_lease_seconds),
                limit=self.batch_size,
            )
        )
        if jobs:
            list(self._pool.map(self.deliver, jobs))
        return done + len(jobs)

    # --- key epochs ---

    def run_key_epoch(self) -> int:
        """One step of the scheduled key epoch (``VAULT_KEY_EPOCH_DAYS``): when the primary KEK
        is that many days old, rotate; once the new primary is older than :data:`EPOCH_GRACE`,
        rewrap every DEK under it and retire every older KEK that no DEK names any more. Returns
        the work done (rotations + rewrapped DEKs + retired KEKs)."""
        engine = self.runtime.engine
        if engine.dialect.name != "postgresql":
            return self._key_epoch(self.clock())
        with Session(engine) as lock:
            if not try_advisory_lock(lock, EPOCH_LOCK):
                return 0  # another worker runs it
            try:
                return self._key_epoch(self.clock())
            finally:
                lock.rollback()

    def _key_epoch(self, now: datetime) -> int:
        settings, envelope = self.settings, self.runtime.envelope
        assert settings.key_epoch_days is not None
        try:
            envelope.reload_now()
            keys = envelope.keys
            primary_at = stamp_primary_created(settings, keys, now)
            if now - primary_at >= timedelta(days=settings.key_epoch_days):
                new_id = rotate_kek(settings, now)
                envelope.reload_now()
                log.info("key epoch: new primary KEK %s", new_id)
                return 1
            old = [kid for kid in keys.kek_ids if kid != keys.primary_kek_id]
            if not old or now - primary_at < EPOCH_GRACE:
                return 0
            done = self._rewrap_all()
            done += self._transaction(
                lambda s: webhooks.reseal_secrets(session=s, envelope=envelope)
            )
            done += self._transaction(
                lambda s: staff_accounts.reseal_totp_secrets(session=s, envelope=envelope)
            )
            for kid in old:
                left = self._transaction(
                    lambda s, kid=kid: (
                        customers_service.deks_under(session=s, kek_id=kid)
                        + webhooks.secrets_under(session=s, kek_id=kid)
                        + staff_accounts.totp_secrets_under(session=s, kek_id=kid)
                    )
                )
                if left == 0:
                    retire_kek(settings, kid)
                    log.info("key epoch: retired KEK %s", kid)
                    done += 1
            envelope.reload_now()
            return done
        except (KeyConfigError, TokenError) as exc:  # e.g. keys from VAULT_MASTER_KEYS
            log.error("key epoch job cannot run: %s", exc)
            return 0

    def _rewrap_all(self, batch_size: int = 1000) -> int:
        """``vault keys rewrap``: passes over the customers until one finds nothing to do."""
        total = 0
        while True:
            in_pass, after = 0, None
            while True:
                n, after = self._transaction(
                    lambda s, after=after: customers_service.rewrap_batch(
                        session=s,
                        envelope=self.runtime.envelope,
                        after=after,
                        batch_size=batch_size,
                    )
                )
                in_pass += n
                if after is None:
                    break
            total += in_pass
            if in_pass == 0:
                return total

    # --- one delivery ---

    def send(self, job: queue.Job) -> queue.Outcome:
        """One HTTP attempt; never raises."""
        now = self.clock()
        try:
            target = check_url(job.url, allow=self.allow, resolve=self.resolve)
        except VaultError as exc:
            return queue.Outcome(ok=False, error=f"url_refused:{exc.code}")
        body = payload(job)
        try:
            signature = sign(runtime=self.runtime, job=job, body=body, now=now)
        except VaultError:
            return queue.Outcome(ok=False, error="secret_unreadable")
        headers = {
            "host": target.host_header(),
            "content-type": "application/json",
            "webhook-id": str(job.event_id),
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            response = self._client(target.host).post(
                target.pinned_url(), content=body, headers=headers, extensions=extensions
            )
        except httpx.TimeoutException:
            return queue.Outcome(ok=False, error="timeout")
        except httpx.HTTPError as exc:
            return queue.Outcome(ok=False, error=f"connection:{type(exc).__name__}")
        ok = 200 <= response.status_code < 300
        return queue.Outcome(
            ok=ok,
            status_code=response.status_code,
            error=None if ok else f"http_{response.status_code}",
        )

    def deliver(self, job: queue.Job) -> str:
        outcome = self.send(job)
        state = self._transaction(
            lambda s: queue.complete(
                session=s,
                job=job,
                worker_id=self.worker_id,
                outcome=outcome,
                settings=self.settings,
                now=self.clock(),
            )
        )
        with self._stats_lock:
            self.stats[state] = self.stats.get(state, 0) + 1
        if not outcome.ok:
            log.warning(
                "webhook %s event %s attempt %d failed (%s): %s",
                job.webhook_id,
                job.event_id,
                job.attempts + 1,
                outcome.error,
                state,
            )
        return state
