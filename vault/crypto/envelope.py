"""Per-customer data keys wrapped by KEKs, value encryption and blind indexes."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto.keys import KekProvider, KeyMaterial
from vault.errors import DecryptionError

_VERSION = b"\x01"
_NONCE = 12


def _seal(key: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + key.encrypt(nonce, plaintext, aad)


def _open(key: AESGCM, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        raise DecryptionError()
    try:
        return key.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
    except InvalidTag:
        raise DecryptionError() from None


def _value_aad(customer_id: UUID, attribute: str) -> bytes:
    return b"cv/value/v1|" + customer_id.bytes + b"|" + attribute.encode()


def _dek_aad(customer_id: UUID, kek_id: str) -> bytes:
    return b"cv/dek/v1|" + customer_id.bytes + b"|" + kek_id.encode()


class DataKey:
    """A customer's unwrapped DEK. Lives only for the request that needs it."""

    __slots__ = ("_aead", "customer_id")

    def __init__(self, customer_id: UUID, raw: bytes):
        self.customer_id = customer_id
        self._aead = AESGCM(raw)

    def __repr__(self) -> str:
        return f"DataKey(customer_id={self.customer_id}, ***)"

    def encrypt(self, attribute: str, plaintext: bytes) -> bytes:
        return _seal(self._aead, plaintext, _value_aad(self.customer_id, attribute))

    def decrypt(self, attribute: str, blob: bytes) -> bytes:
        return _open(self._aead, blob, _value_aad(self.customer_id, attribute))


class Envelope:
    """Wraps and unwraps DEKs through the key provider (KEK bytes in memory, or the PKCS#11
    token), always in one format: ``0x01 | nonce (12) | AES-256-GCM(DEK) + tag`` with associated
    data ``(customer id, KEK id)``. No unwrapped DEK is cached, so erasure has nothing to evict.

    With ``reload`` (the local key file, the token), a key rotated by the CLI while the server
    runs is picked up: at most every few seconds for the primary, and at once (rate-limited)
    when a row names a KEK this process has not seen yet."""

    _RELOAD_EVERY = 5.0
    _MISS_RELOAD_EVERY = 1.0

    def __init__(self, keys: KeyMaterial, reload: Callable[[], KeyMaterial] | None = None):
        self._reload = reload
        self._lock = threading.Lock()
        self._loaded_at = time.monotonic()
        self._missed_at = 0.0
        self._install(keys)

    def _install(self, keys: KeyMaterial) -> None:
        self.keys = keys
        self._provider = keys.provider
        self._primary = keys.primary_kek_id

    def _refresh(self, *, miss: bool) -> None:
        if self._reload is None:
            return
        now = time.monotonic()
        with self._lock:
            if miss:
                if now - self._missed_at < self._MISS_RELOAD_EVERY:
                    return
                self._missed_at = now
            elif now - self._loaded_at < self._RELOAD_EVERY:
                return
            self._loaded_at = now
            self._install(self._reload())

    def __repr__(self) -> str:
        return f"Envelope(primary={self._primary}, provider={self._provider.name}, ***)"

    @property
    def primary_kek_id(self) -> str:
        return self._primary

    @property
    def provider(self) -> KekProvider:
        return self._provider

    def reload_now(self) -> None:
        """Read the keys again at once (after this process rotated or retired a KEK)."""
        if self._reload is not None:
            with self._lock:
                self._loaded_at = time.monotonic()
                self._install(self._reload())

    def _wrap(self, customer_id: UUID, raw: bytes) -> tuple[bytes, str]:
        kek_id = self._primary
        nonce = os.urandom(_NONCE)
        sealed = self._provider.seal(kek_id, nonce, raw, _dek_aad(customer_id, kek_id))
        return _VERSION + nonce + sealed, kek_id

    def _unwrap_raw(self, customer_id: UUID, wrapped: bytes, kek_id: str) -> bytes:
        if len(wrapped) < 1 + _NONCE + 16 or wrapped[:1] != _VERSION:
            raise DecryptionError()
        nonce, sealed, aad = (
            wrapped[1 : 1 + _NONCE],
            wrapped[1 + _NONCE :],
            _dek_aad(customer_id, kek_id),
        )
        try:
            return self._provider.open(kek_id, nonce, sealed, aad)
        except KeyError:  # a KEK rotated in by another process: look once more
            self._refresh(miss=True)
            try:
                return self._provider.open(kek_id, nonce, sealed, aad)
            except KeyError:
                raise DecryptionError() from None

    def new_data_key(self, customer_id: UUID) -> tuple[DataKey, bytes, str]:
        """A fresh DEK for a new customer: (key, wrapped bytes to store, KEK id to store)."""
        self._refresh(miss=False)
        raw = AESGCM.generate_key(bit_length=256)
        wrapped, kek_id = self._wrap(customer_id, raw)
        return DataKey(customer_id, raw), wrapped, kek_id

    def unwrap(self, customer_id: UUID, wrapped: bytes, kek_id: str) -> DataKey:
        return DataKey(customer_id, self._unwrap_raw(customer_id, wrapped, kek_id))

    def rewrap(self, customer_id: UUID, wrapped: bytes, kek_id: str) -> tuple[bytes, str]:
        """The same DEK wrapped under the primary KEK. Values need no re-encryption."""
        self._refresh(miss=False)
        return self._wrap(customer_id, self._unwrap_raw(customer_id, wrapped, kek_id))

    def blind_index(self, attribute: str, normalised: str) -> bytes:
        """Keyed HMAC-SHA256 over (attribute, normalised value): equality lookup only."""
        msg = attribute.encode() + b"\x00" + normalised.encode()
        return hmac.new(self.keys.index_key, msg, hashlib.sha256).digest()
