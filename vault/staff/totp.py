"""The staff console's second factor: RFC 6238 TOTP (pyotp), secrets sealed at rest.

- A secret is 32 base32 characters (160 random bits, RFC 4226's recommendation), shown once as
  an ``otpauth://`` provisioning URI (``vault staff create`` / ``reset``) for an authenticator
  app, and stored only sealed by the KEK provider (AES-256-GCM, the account id as associated
  data), like the webhook secrets (:mod:`vault.events.secrets`).
- A code is accepted for the current 30-second step and one step either side (clock drift),
  and only for a step later than the last one accepted for the account: the same code (or an
  older one) never signs in twice.

Blob layout: ``version | len(kek id) | kek id | nonce (12) | ciphertext+tag``.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime

import pyotp
from cryptography.exceptions import InvalidTag

from vault.crypto.envelope import Envelope
from vault.errors import DecryptionError

ISSUER = "Consent Vault"
_VERSION = 1
_NONCE = 12
WINDOW = 1  # steps accepted either side of the current one


def new_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, name: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


def _aad(staff_id: str) -> bytes:
    return b"cv/staff-totp/v1|" + staff_id.encode()


def seal(envelope: Envelope, staff_id: str, secret: str) -> bytes:
    kid = envelope.primary_kek_id
    nonce = os.urandom(_NONCE)
    sealed = envelope.provider.seal(kid, nonce, secret.encode(), _aad(staff_id))
    return bytes([_VERSION, len(kid.encode())]) + kid.encode() + nonce + sealed


def sealing_kek(blob: bytes | None) -> str | None:
    """The KEK id a stored secret is sealed under (None for no blob or an unreadable one)."""
    if not blob or len(blob) < 2 or blob[0] != _VERSION:
        return None
    try:
        return blob[2 : 2 + blob[1]].decode()
    except UnicodeDecodeError:
        return None


def open_sealed(envelope: Envelope, staff_id: str, blob: bytes) -> str:
    """The secret, or :class:`DecryptionError` (wrong key, moved to another account, altered)."""
    if len(blob) < 2 or blob[0] != _VERSION:
        raise DecryptionError()
    kid, rest = blob[2 : 2 + blob[1]], blob[2 + blob[1] :]
    if len(rest) < _NONCE + 16:
        raise DecryptionError()
    nonce, sealed, aad = rest[:_NONCE], rest[_NONCE:], _aad(staff_id)
    try:
        try:
            opened = envelope.provider.open(kid.decode(), nonce, sealed, aad)
        except KeyError:  # sealed under a KEK another process rotated in
            envelope.reload_now()
            opened = envelope.provider.open(kid.decode(), nonce, sealed, aad)
        return opened.decode()
    except (InvalidTag, UnicodeDecodeError, KeyError):
        raise DecryptionError() from None


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (within :data:`WINDOW` of ``now``) whose code ``code`` is, else None.
    Every candidate is compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def code_at(secret: str, when: datetime) -> str:
    """The code an authenticator shows at ``when`` (tests, the demo)."""
    return pyotp.TOTP(secret).at(when)
