"""The SMTP transport (stdlib ``smtplib``): ``smtp://`` plain, ``smtp+starttls://`` (STARTTLS
is required: a server that does not offer it is a failure, never a silent downgrade),
``smtps://`` (TLS from the first byte), optional ``AUTH`` with ``user:password@``.

TLS always verifies the server's certificate and host name (``ssl.create_default_context``:
TLS 1.2 or newer), against the system's CAs or ``VAULT_SMTP_CA_FILE``. One connection serves a
batch of mails and is closed after it. Every failure becomes :class:`SendFailed` with a short
code; the server's reply text is never kept or logged (it may quote the address).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from uuid import UUID

from vault.config import SmtpUrl
from vault.mail.errors import SendFailed
from vault.mail.wire import wire_bytes


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _code(exc: smtplib.SMTPResponseException) -> int:
    return int(exc.smtp_code) if isinstance(exc.smtp_code, int) else 0


def failure(exc: BaseException) -> SendFailed:
    """What an exception of one attempt means: its code and whether retrying can help."""
    if isinstance(exc, SendFailed):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        code = codes[0] if codes else 0
        return SendFailed(f"smtp_rcpt_{code}", permanent=500 <= code < 600)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendFailed(f"smtp_auth_{_code(exc)}")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return SendFailed(f"smtp_sender_{_code(exc)}")  # our From: a configuration matter
    if isinstance(exc, smtplib.SMTPDataError):
        code = _code(exc)
        return SendFailed(f"smtp_data_{code}", permanent=500 <= code < 600)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendFailed("smtp_not_supported")  # e.g. no STARTTLS or no AUTH offered
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendFailed("smtp_disconnected")
    if isinstance(exc, smtplib.SMTPResponseException):
        return SendFailed(f"smtp_{_code(exc)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendFailed("tls_verify_failed")
    if isinstance(exc, ssl.SSLError):
        return SendFailed("tls_error")
    if isinstance(exc, TimeoutError | socket.timeout):
        return SendFailed("timeout")
    if isinstance(exc, smtplib.SMTPException):
        return SendFailed("smtp_error")
    if isinstance(exc, OSError):
        return SendFailed(f"connection:{type(exc).__name__}"[:64])
    return SendFailed(f"error:{type(exc).__name__}"[:64])


def _login(conn: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH with one mechanism (PLAIN, else LOGIN), tried once: ``smtplib.login`` would try
    each offered mechanism with the same wrong password, and servers lock accounts out."""
    if not conn.has_extn("auth"):
        raise SendFailed("smtp_auth_not_offered")
    offered = conn.esmtp_features["auth"].upper().split()
    for mechanism in ("PLAIN", "LOGIN"):
        if mechanism in offered:
            conn.user, conn.password = user, password
            conn.auth(mechanism, getattr(conn, f"auth_{mechanism.lower()}"))
            return
    raise SendFailed("smtp_auth_mechanism_unsupported")


def _options(recipient: str) -> list[str]:
    """SMTPUTF8 (RFC 6531) only for an address that needs it."""
    return [] if recipient.isascii() else ["SMTPUTF8"]


class SmtpTransport:
    in_transaction = False  # a network round trip: never while holding a database transaction

    def __init__(self, url: SmtpUrl, *, timeout: float, ca_file: Path | None = None):
        self.url = url
        self.timeout = timeout
        self.ca_file = ca_file
        self._conn: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpTransport({self.url!r})"

    def _connect(self) -> smtplib.SMTP:
        url = self.url
        if url.scheme == "smtps":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                url.host, url.port, timeout=self.timeout, context=tls_context(self.ca_file)
            )
        else:
            conn = smtplib.SMTP(url.host, url.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if url.scheme == "smtp+starttls":
                if not conn.has_extn("starttls"):
                    raise SendFailed("smtp_starttls_not_offered")
                conn.starttls(context=tls_context(self.ca_file))
                conn.ehlo()
            if url.username is not None:
                _login(conn, url.username, url.password or "")
        except BaseException:
            self._abort(conn)
            raise
        return conn

    @staticmethod
    def _abort(conn: smtplib.SMTP) -> None:
        with contextlib.suppress(OSError):
            conn.close()

    def send(self, message: EmailMessage, *, mail_id: UUID, sender: str, recipient: str) -> None:
        """One attempt; raises :class:`SendFailed`. A failed connection is dropped, so the next
        mail of the batch starts on a fresh one."""
        try:
            if self._conn is None:
                self._conn = self._connect()
            # the bytes of the receipt's hash (send_message would flatten them the same way)
            self._conn.sendmail(
                sender, [recipient], wire_bytes(message), mail_options=_options(recipient)
            )
        except BaseException as exc:
            if self._conn is not None and not isinstance(exc, smtplib.SMTPRecipientsRefused):
                self._abort(self._conn)
                self._conn = None
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise failure(exc) from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            self._abort(conn)
