"""A mail as it goes on the wire, and its fingerprint.

RFC 5322 with CRLF line ends: what ``smtplib`` sends as DATA (before dot-stuffing, which the
receiving server undoes) and what the mail drop stores, so the SHA-256 in a mail's receipt is
the SHA-256 of the exact message the server accepted.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage


def wire_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def message_sha256(message: EmailMessage) -> str:
    """SHA-256 (hex) of :func:`wire_bytes`."""
    return hashlib.sha256(wire_bytes(message)).hexdigest()
