"""One-click unsubscribe tokens (RFC 8058): a capability per (customer, purpose), no table.

A token is ``epoch (1 byte) | AES-SIV(customer id (16) | purpose id, NUL-padded to a multiple
of 16)`` in unpadded base64url. Each epoch has its own key, whose HKDF ``info`` names this use
and the epoch, so no associated data is needed (each component would cost S2V another CMAC,
about 0.75 µs: the export makes one token per row). AES-SIV
is deterministic authenticated encryption: the same customer and purpose give the same token
in every export (no row to store or look up, a few microseconds each), the 128-bit synthetic IV
is the tag (a forged or altered token fails to open) and the ciphertext says nothing of the
customer or purpose (only the purpose id's length, rounded up to 16 bytes).

The key of an epoch is HKDF-SHA256 over the blind-index key (a separate 32-byte secret of the
key file or the PKCS#11 token's derived secret, never rotated with the KEKs), ``info`` naming
the epoch, so rotating KEKs never breaks a link already in a sent mail. A new epoch (a new key
for new exports while old links keep working) is one entry in :data:`EPOCHS`.

Erasure needs nothing here: a token of an erased customer still opens, and the vault answers
410 for it (the customer row says erased, there is no data to reach).
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CURRENT_EPOCH = 1
EPOCHS = (1,)  # epochs whose tokens open; CURRENT_EPOCH makes new ones
_MAX_TOKEN = 200  # characters: longer is not a token of ours (purpose ids are <= 63)


class InvalidUnsubscribeToken(Exception):
    """Not a token of this vault: malformed, forged, altered or of an unknown epoch."""


def _pad(purpose: str) -> bytes:
    raw = purpose.encode()  # a purpose id is 1 to 63 characters [a-z0-9_]
    return raw + b"\x00" * (-len(raw) % 16)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class UnsubscribeTokens:
    """Makes and opens the tokens; built from the blind-index key (:func:`for_index_key`)."""

    __slots__ = ("_siv",)

    def __init__(self, index_key: bytes):
        self._siv = {
            epoch: AESSIV(
                HKDF(
                    algorithm=hashes.SHA256(),
                    length=64,  # AES-256-SIV: two 256-bit keys
                    salt=None,
                    info=b"consent-vault/unsubscribe/v1/epoch-" + str(epoch).encode(),
                ).derive(index_key)
            )
            for epoch in EPOCHS
        }

    def __repr__(self) -> str:
        return "UnsubscribeTokens(***)"

    def make(self, customer_id: UUID, purpose: str) -> str:
        epoch = bytes([CURRENT_EPOCH])
        sealed = self._siv[CURRENT_EPOCH].encrypt(customer_id.bytes + _pad(purpose), None)
        return _b64(epoch + sealed)

    def maker(self, purpose: str):
        """``customer id -> token`` for one purpose, with the purpose's bytes prepared once
        (the audience export calls it for every row)."""
        epoch = bytes([CURRENT_EPOCH])
        padded, encrypt = _pad(purpose), self._siv[CURRENT_EPOCH].encrypt
        encode = base64.urlsafe_b64encode

        def make(customer_id: UUID) -> str:
            return encode(epoch + encrypt(customer_id.bytes + padded, None)).rstrip(b"=").decode()

        return make

    def open(self, token: str) -> tuple[UUID, str]:
        """(customer id, purpose id) of a token this vault made, else InvalidUnsubscribeToken."""
        if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN:
            raise InvalidUnsubscribeToken()
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidUnsubscribeToken() from None
        if _b64(raw) != token:  # one spelling per token: no padding, no stray characters
            raise InvalidUnsubscribeToken()
        if len(raw) < 1 + 16 + 32 or raw[0] not in self._siv:
            raise InvalidUnsubscribeToken()
        try:
            plain = self._siv[raw[0]].decrypt(raw[1:], None)
        except InvalidTag:
            raise InvalidUnsubscribeToken() from None
        purpose = plain[16:].rstrip(b"\x00")
        try:
            return UUID(bytes=plain[:16]), purpose.decode()
        except UnicodeDecodeError:
            raise InvalidUnsubscribeToken() from None


@lru_cache(maxsize=4)
def for_index_key(index_key: bytes) -> UnsubscribeTokens:
    """The tokens of a vault (one instance per index key, the HKDF run once)."""
    return UnsubscribeTokens(index_key)
