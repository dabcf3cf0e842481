"""Webhook signing secrets: generated per Standard Webhooks, stored only encrypted.

A secret is ``whsec_`` + base64 of 32 random bytes. At rest it is AES-256-GCM ciphertext sealed
by the KEK provider (the key file's KEK in memory, or the PKCS#11 token: the secret never needs
KEK bytes), with the webhook id as associated data, so a ciphertext copied to another
subscription does not decrypt. The blob names its KEK: ``vault keys rewrap`` re-seals secrets
under the primary, and ``vault keys retire`` refuses a KEK that still seals one.

Blob layout: ``version | len(kek id) | kek id | nonce (12) | ciphertext+tag``. Version 2 is
sealed by the provider; version 1 (older vaults) under a key derived (HKDF-SHA256) from the KEK
bytes, still readable with the key file.
"""

from __future__ import annotations

import base64
import os
import secrets as _random
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.crypto.envelope import Envelope
from vault.crypto.keys import KeyMaterial
from vault.errors import DecryptionError

PREFIX = "whsec_"
_VERSION = 2
_V1 = 1  # HKDF of the KEK bytes: read only
_NONCE = 12
_INFO = b"consent-vault/webhook-secret/v1"


def generate_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(32)).decode()


def _v1_aead(keys: KeyMaterial, kek_id: str) -> AESGCM:
    kek = keys.keks.get(kek_id)
    if kek is None:
        raise DecryptionError()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(kek))


def _aad(webhook_id: UUID) -> bytes:
    return b"cv/webhook-secret/v1|" + webhook_id.bytes


def encrypt_secret(envelope: Envelope, webhook_id: UUID, secret: str) -> bytes:
    """Seal under the primary KEK the envelope knows now (it follows rotations)."""
    kid = envelope.primary_kek_id
    nonce = os.urandom(_NONCE)
    sealed = envelope.provider.seal(kid, nonce, secret.encode(), _aad(webhook_id))
    return bytes([_VERSION, len(kid.encode())]) + kid.encode() + nonce + sealed


def sealing_kek(blob: bytes | None) -> str | None:
    """The KEK id a stored secret is sealed under (None for no blob or an unreadable one)."""
    if not blob or len(blob) < 2 or blob[0] not in (_V1, _VERSION):
        return None
    try:
        return blob[2 : 2 + blob[1]].decode()
    except UnicodeDecodeError:
        return None


def decrypt_secret(envelope: Envelope, webhook_id: UUID, blob: bytes) -> str:
    """The secret, or :class:`DecryptionError` for any problem (wrong key, moved or altered)."""
    if len(blob) < 2 or blob[0] not in (_V1, _VERSION):
        raise DecryptionError()
    n = blob[1]
    kid, rest = blob[2 : 2 + n], blob[2 + n :]
    if len(rest) < _NONCE + 16:
        raise DecryptionError()
    nonce, sealed = rest[:_NONCE], rest[_NONCE:]
    try:
        if blob[0] == _V1:
            aead = _v1_aead(envelope.keys, kid.decode())
            return aead.decrypt(nonce, sealed, _aad(webhook_id)).decode()
        try:
            opened = envelope.provider.open(kid.decode(), nonce, sealed, _aad(webhook_id))
        except KeyError:  # sealed under a KEK another process rotated in: read the keys again
            envelope.reload_now()
            opened = envelope.provider.open(kid.decode(), nonce, sealed, _aad(webhook_id))
        return opened.decode()
    except (InvalidTag, UnicodeDecodeError, KeyError):
        raise DecryptionError() from None
