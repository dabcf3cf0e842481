"""Webhook signing secrets: generated per Standard Webhooks, stored only encrypted.

A secret is ``whsec_`` + base64 of 32 random bytes. At rest it is AES-256-GCM ciphertext under a
key derived (HKDF-SHA256) from a KEK, with the webhook id as associated data, so a ciphertext
copied to another subscription does not decrypt. The blob names its KEK, so secrets made before
``vault keys rotate`` still decrypt while the old KEK is kept.

Blob layout: ``0x01 | len(kek id) | kek id | nonce (12) | ciphertext+tag``.
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

from vault.crypto.keys import KeyMaterial
from vault.errors import DecryptionError

PREFIX = "whsec_"
_VERSION = 1
_NONCE = 12
_INFO = b"consent-vault/webhook-secret/v1"


def generate_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(32)).decode()


def _aead(keys: KeyMaterial, kek_id: str) -> AESGCM:
    kek = keys.keks.get(kek_id)
    if kek is None:
        raise DecryptionError()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(kek))


def _aad(webhook_id: UUID) -> bytes:
    return b"cv/webhook-secret/v1|" + webhook_id.bytes


def encrypt_secret(keys: KeyMaterial, webhook_id: UUID, secret: str) -> bytes:
    kid = keys.primary_kek_id.encode()
    nonce = os.urandom(_NONCE)
    sealed = _aead(keys, keys.primary_kek_id).encrypt(nonce, secret.encode(), _aad(webhook_id))
    return bytes([_VERSION, len(kid)]) + kid + nonce + sealed


def decrypt_secret(keys: KeyMaterial, webhook_id: UUID, blob: bytes) -> str:
    """The secret, or :class:`DecryptionError` for any problem (wrong key, moved or altered)."""
    if len(blob) < 2 or blob[0] != _VERSION:
        raise DecryptionError()
    n = blob[1]
    kid, rest = blob[2 : 2 + n], blob[2 + n :]
    if len(rest) < _NONCE + 16:
        raise DecryptionError()
    try:
        aead = _aead(keys, kid.decode())
        return aead.decrypt(rest[:_NONCE], rest[_NONCE:], _aad(webhook_id)).decode()
    except (InvalidTag, UnicodeDecodeError):
        raise DecryptionError() from None
