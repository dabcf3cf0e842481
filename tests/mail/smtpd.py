"""A real SMTP server on loopback for the mail tests (aiosmtpd), never a mock of the client.

``SmtpServer(tls=..., auth=...)`` listens on a free port of 127.0.0.1: plain, with STARTTLS
(required when ``starttls=True``), or TLS from the first byte (``implicit_tls=True``); with
``auth=(user, password)`` it requires AUTH. ``refuse`` decides per recipient: a reply such as
``"550 5.1.1 no such user"`` refuses it, None accepts. Every accepted message is kept in
``messages`` (parsed) in arrival order.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.hardening.server import free_port


def self_signed(directory: Path, name: str = "smtp") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server.refuse(address) if self.server.refuse else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.server.delay:
            time.sleep(self.server.delay)  # blocks this server's loop: one mail at a time
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.server.lock:
            self.server.messages.append(msg)
            self.server.raw.append(envelope.original_content or envelope.content)
            self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.server.authenticated.append(bool(session.authenticated))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        cert: tuple[Path, Path] | None = None,
        refuse: Callable[[str], str | None] | None = None,
        delay: float = 0.0,
    ):
        self.port = free_port()
        self.refuse = refuse
        self.delay = delay
        self.auth = auth
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # DATA as received (dot-stuffing undone)
        self.envelopes: list[tuple[str, list[str]]] = []
        self.authenticated: list[bool] = []
        self.auth_attempts = 0
        self.lock = threading.Lock()
        context = None
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, cert))
        kwargs: dict = {
            "hostname": "127.0.0.1",
            "port": self.port,
            "auth_required": auth is not None,
            # implicit TLS is invisible to aiosmtpd's session: it would never offer AUTH there
            "auth_require_tls": auth is not None and starttls,
            "authenticator": self._authenticate if auth is not None else None,
        }
        if starttls:
            kwargs.update(tls_context=context, require_starttls=True)
        if implicit_tls:
            kwargs.update(ssl_context=context)
        self.controller = Controller(_Handler(self), **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.auth_attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.auth is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def url(self, scheme: str = "smtp", credentials: str = "") -> str:
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.messages]
